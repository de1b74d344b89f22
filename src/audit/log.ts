import { mkdir, appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { AuditConfig } from '../config/schema/index.js'
import { resolvePath } from '../config/load.js'
import type { AdminChange, AuditEntry, AuditLog } from './types.js'

/**
 * Plain JSONL appender. TODO(issue 5): segments, hash chain, group commit, digests, recovery.
 */
export async function openAudit (config: Readonly<AuditConfig>, baseDir: string, log: Logger): Promise<AuditLog> {
  const dir = resolvePath(baseDir, config.dir)
  await mkdir(dir, { recursive: true })
  const file = join(dir, 'audit.jsonl')
  let seq = 0
  let pending: Promise<void> = Promise.resolve()
  return {
    append (entry: AuditEntry): void {
      const line = JSON.stringify({ ...entry, seq: ++seq, prev: '', hash: '' }) + '\n'
      pending = pending.then(() => appendFile(file, line)).catch((err: unknown) => { log.error({ err }, 'audit write failed') })
    },
    appendAdminChange (change: AdminChange): void {
      const line = JSON.stringify({ kind: 'admin', ...change, seq: ++seq, prev: '', hash: '' }) + '\n'
      pending = pending.then(() => appendFile(file, line)).catch((err: unknown) => { log.error({ err }, 'audit write failed') })
    },
    async flush () { await pending },
    async close () { await pending }
  }
}
