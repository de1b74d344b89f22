import { execFileSync, execFile } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { AddressInfo } from 'node:net'

const run = promisify(execFile)

export function hasOpenssl (): boolean {
  try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true } catch { return false }
}

export interface LocalTsa { url: string, caCert: string, tsaCert: string, requests: number, close: () => Promise<void> }

/**
 * A real RFC 3161 time-stamp authority on 127.0.0.1: a CA, a TSA certificate it issues (extendedKeyUsage
 * critical timeStamping), and an HTTP server on port 0 answering each application/timestamp-query with
 * `openssl ts -reply`.
 */
export async function startTsa (dir: string, name = 'Test'): Promise<LocalTsa> {
  await mkdir(dir, { recursive: true })
  const p = (f: string): string => join(dir, f)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  await run('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-subj', `/CN=${name} TSA CA`, '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  await run('openssl', ['req', '-new', ...ec, '-keyout', p('tsa.key'), '-out', p('tsa.csr'), '-subj', `/CN=${name} TSA`])
  await writeFile(p('tsa.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n')
  await run('openssl', ['x509', '-req', '-in', p('tsa.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('tsa.crt'), '-days', '2', '-extfile', p('tsa.ext')])
  await writeFile(p('serial'), '01\n')
  await writeFile(p('tsa.cnf'), `[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = ${dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
certs = $dir/ca.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.55555.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`)
  let n = 0
  // One reply at a time: openssl ts -reply increments the serial file.
  let chain: Promise<unknown> = Promise.resolve()
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      chain = chain.then(async () => {
        const id = ++n
        if (req.method !== 'POST' || req.headers['content-type'] !== 'application/timestamp-query') { res.statusCode = 415; res.end(); return }
        await writeFile(p(`q${id}.tsq`), Buffer.concat(chunks))
        try {
          await run('openssl', ['ts', '-reply', '-config', p('tsa.cnf'), '-queryfile', p(`q${id}.tsq`), '-out', p(`r${id}.tsr`)])
          res.setHeader('content-type', 'application/timestamp-reply')
          res.end(await readFile(p(`r${id}.tsr`)))
        } catch {
          res.statusCode = 500
          res.end()
        }
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/tsa`,
    caCert: p('ca.crt'),
    tsaCert: p('tsa.crt'),
    get requests () { return n },
    close: async () => { await new Promise<void>((resolve) => server.close(() => { resolve() })) }
  }
}
