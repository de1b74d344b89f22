/**
 * Retention: delete a writer's oldest segments once they are past retentionDays, verified (their bytes still
 * hash to their signed final digest) and listed as exported in exported.jsonl with that same hash. Only a prefix
 * of the chain is ever removed, never the newest segment, and each deletion is first written (durably) into the
 * chain itself, so `verify` can tell a retention deletion from a deleted segment.
 */
import { unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { listSegments } from './segments.js'
import { readExported } from './export.js'
import { finalDigests } from './digests.js'
import { hashFile } from './files.js'
import type { SystemFields } from './types.js'

export interface RetentionHost {
  dir: string
  writer: string
  log: Logger
  /** the segment being written, never deleted */
  current: () => string | null
  /** write a system record into the chain and wait until it is durable */
  record: (entry: SystemFields) => Promise<void>
}

/** One sweep; returns how many segments were deleted. */
export async function sweepRetention (host: RetentionHost, days: number): Promise<number> {
  const cutoff = new Date(Date.now() - days * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '')
  const segments = (await listSegments(host.dir)).get(host.writer) ?? []
  const exported = await readExported(host.dir)
  const finals = await finalDigests(host.dir, host.writer)
  let deleted = 0
  // Never the newest segment (it holds the chain's tip), nor the one being written.
  for (const seg of segments.slice(0, -1)) {
    if (seg.day >= cutoff || seg.file === host.current()) break
    const final = finals.get(seg.file)
    const ex = exported.get(seg.file)
    if (final === undefined || ex === undefined || ex.sha256 !== final.sha256) break
    const actual = (await hashFile(join(host.dir, seg.file))).digest('hex')
    if (actual !== final.sha256) {
      host.log.error({ segment: seg.file }, 'audit retention: segment does not match its final digest; kept')
      break
    }
    await host.record({
      kind: 'system',
      ts: new Date().toISOString(),
      event: 'retention-delete',
      detail: { segment: seg.file, sha256: final.sha256, firstSeq: final.firstSeq, lastSeq: final.lastSeq, lastHash: final.lastHash, records: final.records, exportedAt: ex.exportedAt, retentionDays: days }
    })
    await unlink(join(host.dir, seg.file))
    deleted++
  }
  if (deleted > 0) host.log.info({ deleted, retentionDays: days }, 'audit retention: segments deleted')
  return deleted
}
