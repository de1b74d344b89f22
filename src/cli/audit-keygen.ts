import { generateKeyPairSync } from 'node:crypto'
import { mkdir, readdir, realpath, writeFile } from 'node:fs/promises'
import { join, relative, resolve, isAbsolute } from 'node:path'
import { parse } from './args.js'
import { loadConfig, resolvePath } from '../config/load.js'
import { publicKeyId } from '../audit/chain.js'
import { createPublicKey } from 'node:crypto'

export const KEYGEN_USAGE = `  geogate audit keygen --out DIR [--name NAME] [--audit-dir DIR | --config FILE]
      an Ed25519 key pair for signed digests: DIR/NAME.key (private, mode 0600) and DIR/NAME.pub; never inside the
      audit directory (whoever can write the log must not find the key beside it); NAME defaults to audit-signing
`

async function real (p: string): Promise<string> {
  try { return await realpath(p) } catch { return resolve(p) }
}

function inside (child: string, parent: string): boolean {
  const r = relative(parent, child)
  return r === '' || (!r.startsWith('..') && !isAbsolute(r))
}

/** Does DIR look like an audit directory (segments or digests/)? */
async function looksLikeAuditDir (dir: string): Promise<boolean> {
  const names = await readdir(dir).catch(() => [] as string[])
  return names.includes('digests') || names.some((n) => /_\d{8}_\d{12}\.jsonl$/.test(n))
}

/** `geogate audit keygen`. */
export async function keygenCmd (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    out: { type: 'string' },
    name: { type: 'string', default: 'audit-signing' },
    'audit-dir': { type: 'string' },
    config: { type: 'string', short: 'c' }
  })
  if (values.out === undefined || !/^[A-Za-z0-9._-]{1,100}$/.test(values.name)) { process.stderr.write(`usage:\n${KEYGEN_USAGE}`); return 2 }
  const out = await real(values.out)
  const auditDirs: string[] = []
  if (values['audit-dir'] !== undefined) auditDirs.push(values['audit-dir'])
  const cfg = values.config ?? process.env.GEOGATE_CONFIG
  if (cfg !== undefined) {
    const loaded = await loadConfig(cfg)
    auditDirs.push(resolvePath(loaded.baseDir, loaded.config.audit.dir))
  }
  for (const d of auditDirs) {
    if (inside(out, await real(d))) { process.stderr.write(`keygen: ${values.out} is inside the audit directory ${d}; keep the key elsewhere (a secret store, a mounted secret)\n`); return 2 }
  }
  // Also when no configuration says where the log is: a directory (or a parent) holding segments or digests/.
  for (let p = out; ; p = resolve(p, '..')) {
    if (await looksLikeAuditDir(p)) { process.stderr.write(`keygen: ${p} holds an audit log; keep the key elsewhere\n`); return 2 }
    if (p === resolve(p, '..')) break
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const priv = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const pub = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  await mkdir(out, { recursive: true, mode: 0o700 })
  const keyFile = join(out, `${values.name}.key`)
  const pubFile = join(out, `${values.name}.pub`)
  try {
    // 'wx': never overwrite a key (the digests it signed would no longer verify against a pinned public key).
    await writeFile(keyFile, priv, { flag: 'wx', mode: 0o600 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') { process.stderr.write(`keygen: ${keyFile} exists; not overwritten\n`); return 1 }
    throw err
  }
  await writeFile(pubFile, pub, { flag: 'w', mode: 0o644 })
  process.stdout.write(`private key: ${keyFile} (0600; give it to the gateway as audit.signingKeyFile or \${AUDIT_SIGNING_KEY})\n` +
    `public key:  ${pubFile} (keyId ${publicKeyId(createPublicKey(pub))}; give it to auditors: geogate audit verify DIR --public-key ${pubFile})\n`)
  return 0
}
