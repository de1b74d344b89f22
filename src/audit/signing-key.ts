import { generateKeyPairSync } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, relative, isAbsolute } from 'node:path'
import type { Logger } from 'pino'
import type { AuditConfig } from '../config/schema/index.js'
import { resolvePath } from '../config/load.js'
import { loadSigner, type Signer } from './chain.js'

/**
 * The digest signing key, from audit.signingKey (PEM, usually ${AUDIT_SIGNING_KEY} from a secret) or
 * audit.signingKeyFile (a mounted secret). `audit.require: signed` refuses to run without one: unsigned digests
 * let whoever can write the files rebuild the chain. `generateDemoKey` (the shipped demo config only) creates the
 * file on first start so `npm start` signs too; such a key lives beside the gateway and proves little.
 */
export async function auditSigner (config: Readonly<AuditConfig>, baseDir: string, auditDir: string, log: Logger): Promise<Signer | null> {
  let signer: Signer | null = null
  if (config.signingKey !== undefined && config.signingKey !== '') signer = loadSigner(config.signingKey)
  else if (config.signingKeyFile !== undefined) {
    const file = resolvePath(baseDir, config.signingKeyFile)
    const r = relative(auditDir, file)
    if (r === '' || (!r.startsWith('..') && !isAbsolute(r))) throw new Error(`audit.signingKeyFile ${file} is inside audit.dir: keep the key where the log's writers cannot read it beside the log`)
    let pem: string
    try {
      pem = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !config.generateDemoKey) throw new Error(`audit.signingKeyFile ${file}: ${(err as Error).message}`, { cause: err })
      pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      await mkdir(dirname(file), { recursive: true, mode: 0o700 })
      await writeFile(file, pem, { flag: 'wx', mode: 0o600 })
      log.warn({ file }, 'DEMO audit signing key generated (audit.generateDemoKey): fine for trying geogate, not evidence — create a real one with `geogate audit keygen` and pass it as a secret')
    }
    signer = loadSigner(pem)
  }
  if (signer === null && config.require === 'signed') {
    throw new Error('audit.require is signed but no signing key is configured: set audit.signingKey (e.g. ${AUDIT_SIGNING_KEY}) or audit.signingKeyFile; create one with `geogate audit keygen --out DIR`')
  }
  if (signer === null) log.warn('audit.signingKey is not set: digests are hash-chained but unsigned (geogate_audit_signed 0)')
  return signer
}
