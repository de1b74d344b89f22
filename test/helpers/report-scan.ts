import { readRecords, type RecordFilter } from '../../src/audit/read.js'
import { periodRange, type ReportRow, type UsageReport } from '../../src/audit/report.js'

/**
 * The usage report as a plain scan over the JSONL records (what `buildReport` did before it ran on the SQL
 * engine): the reference the engine's report is held to, field for field and in the same order.
 */

function emptyTotals (): UsageReport['totals'] {
  return { interactions: 0, allowed: 0, denied: 0, shadowDenied: 0, crossBorder: 0, unknownOutcome: 0, tokensIn: 0, tokensOut: 0, refusalsByRule: {} }
}

export async function buildReportScan (dir: string, period: string, filter: RecordFilter = {}, onProgress?: (records: number) => void): Promise<UsageReport> {
  const { from, to } = periodRange(period)
  const rows = new Map<string, ReportRow>()
  const totals = emptyTotals()
  const daily: UsageReport['daily'] = {}
  let n = 0
  for await (const { record: r } of readRecords(dir, { ...filter, from, to, kind: 'interaction' })) {
    if (r.kind !== 'interaction') continue
    if (++n % 100_000 === 0) onProgress?.(n)
    const country = r.country ?? 'unknown'
    const locationTier = r.locationTier ?? 'unknown'
    const model = r.model ?? 'unknown'
    const tier = r.keyTier ?? 'unknown'
    const key = `${country}\u0000${locationTier}\u0000${model}\u0000${tier}`
    let row = rows.get(key)
    if (row === undefined) {
      row = { period, country, locationTier, model, tier, ...emptyTotals() }
      rows.set(key, row)
    }
    const day = r.ts.slice(0, 10)
    const dd = daily[day] ?? (daily[day] = { allowed: 0, denied: 0 })
    for (const t of [row, totals]) {
      t.interactions++
      if (r.decision === 'deny') {
        t.denied++
        t.refusalsByRule[r.rule] = (t.refusalsByRule[r.rule] ?? 0) + 1
      } else t.allowed++
      if (r.shadow === true) t.shadowDenied++
      if (r.crossBorder) t.crossBorder++
      if (r.outcome === 'unknown') t.unknownOutcome++
      t.tokensIn += r.tokensIn ?? 0
      t.tokensOut += r.tokensOut ?? 0
    }
    if (r.decision === 'deny') dd.denied++
    else dd.allowed++
  }
  onProgress?.(n)
  const sorted = [...rows.values()].sort((a, b) => b.interactions - a.interactions || (a.country < b.country ? -1 : a.country > b.country ? 1 : 0))
  return { period, from, to, generatedAt: new Date().toISOString(), totals, daily, rows: sorted }
}

