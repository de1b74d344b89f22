import { readRecords, type RecordFilter } from './read.js'
import { periodRange, type ReportContext } from './report.js'
import { verifyDir } from './verify.js'
import type { AdminRecord } from './types.js'

export type { ReportContext }

/** Gathered apart from the aggregation (buildReport), in one more pass over the period. */
export async function reportContext (dir: string, period: string, filter: RecordFilter = {}, opts: { live?: boolean, verify?: boolean } = {}): Promise<ReportContext> {
  const { from, to } = periodRange(period)
  const writers = new Set<string>()
  const classes = new Map<string, Set<string>>()
  const adminChanges: AdminRecord[] = []
  for await (const { record: r } of readRecords(dir, { from, to })) {
    writers.add(r.writer)
    if (r.kind === 'admin') { adminChanges.push(r); continue }
    if (r.kind !== 'interaction' || r.model === null || r.classification === null) continue
    if (filter.model !== undefined && r.model !== filter.model) continue
    let set = classes.get(r.model)
    if (set === undefined) classes.set(r.model, set = new Set())
    set.add(r.classification)
  }
  const classifications = new Map<string, string[]>()
  for (const [m, s] of classes) classifications.set(m, [...s].sort())
  const verification = opts.verify === false ? null : await verifyDir(dir, { live: opts.live ?? false })
  return { dir, writers: [...writers].sort(), classifications, adminChanges, verification }
}
