import type { Logger } from 'pino'
import type { AuditConfig } from '../config/schema/index.js'
import { Anchorer } from './anchor.js'
import { postgresWitness, s3Witness, type WitnessSink } from './anchor-witness.js'

/** The Anchorer audit.tsa and audit.witness ask for (one that does nothing when neither is set). */
export function anchorFor (config: Readonly<AuditConfig>, dir: string, writer: string, log: Logger): Anchorer {
  const witnesses: WitnessSink[] = []
  const pg = config.witness?.postgres
  if (pg !== undefined) witnesses.push(postgresWitness({ url: pg.url, table: pg.table, timeoutMs: pg.timeoutMs }))
  const s3 = config.witness?.s3
  if (s3 !== undefined) witnesses.push(s3Witness({ bucket: s3.bucket, prefix: s3.prefix, region: s3.region, endpoint: s3.endpoint, retainDays: s3.retainDays }))
  const tsa = config.tsa === undefined ? null : { url: config.tsa.url, timeoutMs: config.tsa.timeoutMs }
  return new Anchorer({ dir, writer, tsa, witnesses, log: log.child({ part: 'anchor' }) })
}
