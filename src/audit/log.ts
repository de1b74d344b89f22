import { mkdir, open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { AuditConfig } from '../config/schema/index.js'
import { resolvePath } from '../config/load.js'
import { auditSigner } from './signing-key.js'
import { anchorFor } from './anchor-config.js'
import { defaultWriterId } from './segments.js'
import { AuditWriter } from './writer.js'
import type { AuditLog } from './types.js'

/**
 * Open this replica's audit log from the configuration: pick the writer id (one chain per writer; a lock file
 * stops two live processes from writing the same chain), load the signing key, recover and start the writer.
 */
export async function openAudit (config: Readonly<AuditConfig>, baseDir: string, log: Logger): Promise<AuditLog> {
  const dir = resolvePath(baseDir, config.dir)
  await mkdir(dir, { recursive: true })
  if (config.ip === 'hashed' && config.ipHashSalt === undefined) throw new Error('audit.ip: hashed needs audit.ipHashSalt (a secret, e.g. ${AUDIT_IP_SALT})')
  const signer = await auditSigner(config, baseDir, dir, log)
  const lock = await takeLock(dir, config.writerId ?? defaultWriterId())
  const anchorer = anchorFor(config, dir, lock.writer, log)
  let writer: AuditWriter
  try {
    writer = await AuditWriter.open({
      dir,
      writer: lock.writer,
      fsyncIntervalMs: config.fsyncIntervalMs,
      flushBytes: config.flushBytes,
      rotateBytes: config.rotateBytes,
      digestIntervalMs: config.digestIntervalMs,
      signer,
      log,
      retentionDays: config.retentionDays,
      maxBacklog: config.maxBacklog,
      maxHeldRecords: config.maxHeldRecords,
      journalTimeoutMs: config.journalTimeoutMs,
      onDigest: (file, text) => { anchorer.submit(file, text) }
    })
    await anchorer.catchUp()
  } catch (err) {
    await anchorer.close(0)
    await lock.release()
    throw err
  }
  log.info({ dir, writer: lock.writer, signed: signer !== null }, 'audit log open')
  const close = writer.close.bind(writer)
  return Object.assign(writer, {
    /** digests waiting for their time-stamp or witness, and failed attempts (geogate_audit_anchor_*) */
    anchorStats: () => anchorer.stats(),
    async close (): Promise<void> {
      try { await close() } finally {
        await anchorer.close()
        await lock.release()
      }
    }
  })
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/**
 * `<writer>.lock` holds the pid of the process writing that chain. A lock left by a dead process is taken over
 * (that is the crash-recovery path); one held by a live process (another replica sharing the directory and the
 * host name, or a second gateway in this process) makes this one write its own chain, `<writer>-<pid>-<n>`.
 */
async function takeLock (dir: string, base: string): Promise<{ writer: string, release: () => Promise<void> }> {
  for (let n = 0; n < 100; n++) {
    const writer = n === 0 ? base : `${base}-${process.pid}-${n}`
    const path = join(dir, `${writer}.lock`)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(path, 'wx')
        await fh.writeFile(String(process.pid))
        await fh.close()
        return { writer, release: async () => { await unlink(path).catch(() => {}) } }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim())
        if (Number.isInteger(pid) && pid > 0 && (pid === process.pid || alive(pid))) break
        await unlink(path).catch(() => {})
      }
    }
  }
  throw new Error(`audit: no free writer id in ${dir}`)
}
