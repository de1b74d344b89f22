import type { DuckDBValue, Json } from '@duckdb/node-api'
import type { RecordFilter } from './read.js'
import { openSql } from './sql.js'

/**
 * The usage report's aggregation, on the SQL engine: one scan of the period's segments (chosen by file name, so a
 * month of a year is read, not the year), grouped finely (row × UTC day × refusal rule), folded into rows, totals
 * and days here. The result is what the record-by-record scan produced, in the same order: groups, rules and days
 * appear in the order of their first record in time (ts, then writer, then seq — the order the time-ordered merge
 * of the writers' chains visits them), so JSON object keys and tie orders match too.
 */

/** The counts of one report row and of the totals (ReportRow in report.ts adds the row's keys). */
export interface UsageCounts {
  interactions: number
  allowed: number
  denied: number
  /** refused in shadow mode: would have been denied */
  shadowDenied: number
  crossBorder: number
  unknownOutcome: number
  tokensIn: number
  tokensOut: number
  refusalsByRule: Record<string, number>
}

export interface UsageRow extends UsageCounts { period: string, country: string, locationTier: string, model: string, tier: string }

export interface UsageAggregate {
  rows: UsageRow[]
  totals: UsageCounts
  daily: Record<string, { allowed: number, denied: number }>
  records: number
}

interface Fine {
  country: string, locationTier: string, model: string, tier: string, day: string, rule: string | null
  n: number, denied: number, shadow: number, crossBorder: number, unknown: number, tokensIn: number, tokensOut: number
  first: [string, string, number]
}

function emptyTotals (): UsageCounts {
  return { interactions: 0, allowed: 0, denied: 0, shadowDenied: 0, crossBorder: 0, unknownOutcome: 0, tokensIn: 0, tokensOut: 0, refusalsByRule: {} }
}

function before (a: Fine['first'], b: Fine['first']): boolean {
  return a[0] < b[0] || (a[0] === b[0] && (a[1] < b[1] || (a[1] === b[1] && a[2] < b[2])))
}

/** WHERE clauses (with their parameters) for the filter fields the report honours. */
export function filterSql (f: RecordFilter): { where: string[], params: DuckDBValue[] } {
  const where: string[] = []
  const params: DuckDBValue[] = []
  const eq = (col: string, v: string | undefined): void => { if (v !== undefined) { where.push(`"${col}" = ?`); params.push(v) } }
  if (f.kind !== undefined) { where.push('kind = ?'); params.push(f.kind) }
  if (f.from !== undefined) { where.push('ts >= ?'); params.push(f.from) }
  if (f.to !== undefined) { where.push('ts < ?'); params.push(f.to) }
  const interactionOnly = f.country ?? f.subdivision ?? f.model ?? f.keyId ?? f.org ?? f.decision
  if (interactionOnly !== undefined) where.push("kind = 'interaction'")
  eq('country', f.country)
  eq('subdivision', f.subdivision)
  eq('model', f.model)
  eq('keyId', f.keyId)
  eq('org', f.org)
  eq('decision', f.decision)
  return { where, params }
}

const num = (v: Json): number => typeof v === 'number' ? v : Number(v)
const str = (v: Json): string => typeof v === 'string' ? v : String(v)

export async function aggregateUsage (dir: string, period: string, filter: RecordFilter): Promise<UsageAggregate> {
  const session = await openSql(dir, { filter })
  let result
  try {
    const { where, params } = filterSql({ ...filter, kind: 'interaction' })
    result = await session.internal(`
      SELECT coalesce(country, CASE WHEN location = 'internal' THEN 'internal' ELSE 'unknown' END), coalesce(locationTier, 'unknown'), coalesce(model, 'unknown'), coalesce(keyTier, 'unknown'),
             substr(ts, 1, 10), CASE WHEN decision = 'deny' THEN rule END,
             count(*), count(*) FILTER (WHERE decision = 'deny'), count(*) FILTER (WHERE shadow), count(*) FILTER (WHERE crossBorder),
             count(*) FILTER (WHERE outcome = 'unknown'), coalesce(sum(tokensIn), 0), coalesce(sum(tokensOut), 0),
             min({ts: ts, writer: writer, seq: seq})
      FROM records WHERE ${where.join(' AND ')}
      GROUP BY ALL`, params)
  } finally {
    session.close()
  }
  const fine: Fine[] = result.rows.map((r) => {
    const first = r[13] as { ts: string, writer: string, seq: string | number }
    return {
      country: str(r[0] ?? null), locationTier: str(r[1] ?? null), model: str(r[2] ?? null), tier: str(r[3] ?? null), day: str(r[4] ?? null),
      rule: r[5] === null || r[5] === undefined ? null : str(r[5]),
      n: num(r[6] ?? 0), denied: num(r[7] ?? 0), shadow: num(r[8] ?? 0), crossBorder: num(r[9] ?? 0), unknown: num(r[10] ?? 0),
      tokensIn: num(r[11] ?? 0), tokensOut: num(r[12] ?? 0), first: [first.ts, first.writer, Number(first.seq)]
    }
  })
  // Fine groups in the order of their first record: each row, rule and day then first appears where the scan met it.
  fine.sort((a, b) => before(a.first, b.first) ? -1 : before(b.first, a.first) ? 1 : 0)
  const rows = new Map<string, UsageRow>()
  const totals = emptyTotals()
  const daily: UsageAggregate['daily'] = {}
  let records = 0
  for (const f of fine) {
    const key = `${f.country}\u0000${f.locationTier}\u0000${f.model}\u0000${f.tier}`
    let row = rows.get(key)
    if (row === undefined) {
      row = { period, country: f.country, locationTier: f.locationTier, model: f.model, tier: f.tier, ...emptyTotals() }
      rows.set(key, row)
    }
    records += f.n
    for (const t of [row, totals]) {
      t.interactions += f.n
      t.denied += f.denied
      t.allowed += f.n - f.denied
      t.shadowDenied += f.shadow
      t.crossBorder += f.crossBorder
      t.unknownOutcome += f.unknown
      t.tokensIn += f.tokensIn
      t.tokensOut += f.tokensOut
    }
    if (f.rule !== null) {
      row.refusalsByRule[f.rule] = (row.refusalsByRule[f.rule] ?? 0) + f.denied
      totals.refusalsByRule[f.rule] = (totals.refusalsByRule[f.rule] ?? 0) + f.denied
    }
    const dd = daily[f.day] ?? (daily[f.day] = { allowed: 0, denied: 0 })
    dd.allowed += f.n - f.denied
    dd.denied += f.denied
  }
  return { rows: [...rows.values()], totals, daily, records }
}
