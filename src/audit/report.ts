import { ReportPeriodError } from '../core/errors.js'
import type { RecordFilter } from './read.js'
import { aggregateUsage, type UsageCounts } from './report-query.js'
import { csvCell } from './export.js'
import { describeRule } from '../core/rule-ids.js'
import type { VerifyResult } from './verify.js'
import type { AdminRecord } from './types.js'

/**
 * Usage report per period × country × model × tier: interactions, refusals by rule, tokens in/out.
 * `tier` is the key's plan tier; `locationTier` (the tier the caller's location mapped to) is a column too, since
 * anonymizers and subdivisions can put callers from one country in different tiers.
 */

export interface ReportRow extends UsageCounts {
  period: string
  country: string
  locationTier: string
  model: string
  tier: string
}

/**
 * What a usage report shows besides its counts: who wrote the chains it read, the export classification of each
 * model as recorded, the admin changes of the period, and whether the chains verify. Gathered by
 * reportContext (report-context.ts) apart from the aggregation, so the counting can change without it.
 */
export interface ReportContext {
  dir: string
  /** every writer (replica) whose records the period holds, sorted */
  writers: string[]
  /** model -> the classifications its interactions were recorded with */
  classifications: Map<string, string[]>
  adminChanges: AdminRecord[]
  /** the verification of the whole directory (a chain verifies from its start); null when not run */
  verification: VerifyResult | null
}

export interface UsageReport {
  period: string
  from: string
  to: string
  generatedAt: string
  totals: Omit<ReportRow, 'period' | 'country' | 'locationTier' | 'model' | 'tier'>
  /** interactions per UTC day */
  daily: Record<string, { allowed: number, denied: number }>
  rows: ReportRow[]
}

/** 2026, 2026-11 or 2026-11-03 → [from, to) in ISO 8601. */
export function periodRange (period: string): { from: string, to: string } {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(period)
  if (m === null) throw new ReportPeriodError(period, `period: YYYY, YYYY-MM or YYYY-MM-DD, got "${period}"`)
  const y = Number(m[1])
  const mo = m[2] === undefined ? null : Number(m[2]) - 1
  const d = m[3] === undefined ? null : Number(m[3])
  if (mo !== null && (mo < 0 || mo > 11)) throw new ReportPeriodError(period, `period: no month ${m[2] ?? ''}`)
  const from = new Date(Date.UTC(y, mo ?? 0, d ?? 1))
  const to = mo === null ? new Date(Date.UTC(y + 1, 0, 1)) : d === null ? new Date(Date.UTC(y, mo + 1, 1)) : new Date(Date.UTC(y, mo, d + 1))
  if (d !== null && from.getUTCDate() !== d) throw new ReportPeriodError(period, `period: no day ${period}`)
  return { from: from.toISOString(), to: to.toISOString() }
}

export async function buildReport (dir: string, period: string, filter: RecordFilter = {}, onProgress?: (records: number) => void): Promise<UsageReport> {
  const { from, to } = periodRange(period)
  const { rows, totals, daily, records } = await aggregateUsage(dir, period, { ...filter, from, to })
  onProgress?.(records)
  const sorted = rows.sort((a, b) => b.interactions - a.interactions || (a.country < b.country ? -1 : a.country > b.country ? 1 : 0))
  return { period, from, to, generatedAt: new Date().toISOString(), totals, daily, rows: sorted }
}

export const REPORT_CSV_COLUMNS = ['period', 'country', 'locationTier', 'model', 'tier', 'interactions', 'allowed', 'denied', 'shadowDenied', 'crossBorder', 'unknownOutcome', 'tokensIn', 'tokensOut', 'refusalsByRule'] as const

export function reportCsv (r: UsageReport): string {
  const lines = [REPORT_CSV_COLUMNS.join(',')]
  for (const row of r.rows) {
    lines.push(REPORT_CSV_COLUMNS.map((c) => c === 'refusalsByRule'
      ? csvCell(Object.entries(row.refusalsByRule).map(([k, v]) => `${k}=${v}`).join(' '))
      : csvCell(row[c])).join(','))
  }
  return lines.join('\r\n') + '\r\n'
}

// ── HTML: one self-contained page, charts as inline SVG, no script, no external assets ─────────────────────────

export function esc (s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c)
}

export const fmt = new Intl.NumberFormat('en-US')

export interface Bar { label: string, parts: Array<{ value: number, color: string, name: string }> }

export function barChart (title: string, bars: Bar[], legend: Array<{ name: string, color: string }>): string {
  // labels are never cut: the label column is as wide as the longest one (about 7 px a character at 12 px)
  const labelW = Math.max(170, 12 + 7 * Math.max(0, ...bars.map((b) => b.label.length)))
  const width = labelW + 550
  const rowH = 22
  const h = bars.length * rowH + 30
  const max = Math.max(1, ...bars.map((b) => b.parts.reduce((s, p) => s + p.value, 0)))
  const scale = (width - labelW - 90) / max
  const rows = bars.map((b, i) => {
    const y = 24 + i * rowH
    let x = labelW
    const rects = b.parts.map((p) => {
      const w = p.value * scale
      const r = `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${p.color}"><title>${esc(b.label)} — ${esc(p.name)}: ${fmt.format(p.value)}</title></rect>`
      x += w
      return r
    }).join('')
    const total = b.parts.reduce((s, p) => s + p.value, 0)
    return `<text x="${labelW - 6}" y="${y + 12}" text-anchor="end">${esc(b.label)}</text>${rects}<text x="${(x + 4).toFixed(1)}" y="${y + 12}">${fmt.format(total)}</text>`
  }).join('')
  const leg = legend.map((l, i) => `<rect x="${labelW + i * 110}" y="4" width="10" height="10" fill="${l.color}"/><text x="${labelW + 14 + i * 110}" y="13">${esc(l.name)}</text>`).join('')
  return `<figure><figcaption>${esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" role="img" aria-label="${esc(title)}">${leg}${rows}</svg></figure>`
}

function dailyChart (daily: UsageReport['daily']): string {
  const days = Object.keys(daily).sort()
  if (days.length === 0) return ''
  const width = 720
  const height = 180
  const max = Math.max(1, ...days.map((d) => (daily[d]?.allowed ?? 0) + (daily[d]?.denied ?? 0)))
  const bw = Math.max(2, (width - 60) / days.length - 2)
  const bars = days.map((d, i) => {
    const a = daily[d]?.allowed ?? 0
    const n = daily[d]?.denied ?? 0
    const x = 50 + i * (bw + 2)
    const ha = (a / max) * (height - 40)
    const hn = (n / max) * (height - 40)
    return `<rect x="${x.toFixed(1)}" y="${(height - 20 - ha).toFixed(1)}" width="${bw.toFixed(1)}" height="${ha.toFixed(1)}" fill="#2b7a4b"><title>${d} allowed: ${fmt.format(a)}</title></rect>` +
      `<rect x="${x.toFixed(1)}" y="${(height - 20 - ha - hn).toFixed(1)}" width="${bw.toFixed(1)}" height="${hn.toFixed(1)}" fill="#b3261e"><title>${d} denied: ${fmt.format(n)}</title></rect>`
  }).join('')
  const first = days[0] ?? ''
  const last = days[days.length - 1] ?? ''
  return `<figure><figcaption>Interactions per day (UTC)</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="Interactions per day">` +
    `<text x="0" y="14">${fmt.format(max)}</text><line x1="48" y1="${height - 20}" x2="${width}" y2="${height - 20}" stroke="#888"/>${bars}` +
    `<text x="50" y="${height - 4}">${esc(first)}</text><text x="${width}" y="${height - 4}" text-anchor="end">${esc(last)}</text></svg></figure>`
}

function topBy<T> (entries: Array<[string, T]>, value: (t: T) => number, n: number): Array<[string, T]> {
  return entries.sort((a, b) => value(b[1]) - value(a[1])).slice(0, n)
}

function jsonText (v: unknown): string {
  const t = JSON.stringify(v)
  return t === undefined ? '' : t
}

function verificationHtml (v: VerifyResult | null): string {
  if (v === null) return '<p class="verify">Integrity of the chains: <b>not checked</b> for this report (run <code>npx geogate audit verify</code>).</p>'
  const what = `${fmt.format(v.chains)} chain(s), ${fmt.format(v.segments)} segment(s), ${fmt.format(v.records)} record(s), ${fmt.format(v.digests)} digest(s) (${fmt.format(v.signedDigests)} signed)`
  if (v.ok) return `<p class="verify ok">Integrity of the chains read: <b>verified</b> — ${esc(what)}.${v.warnings.length > 0 ? ' Warnings: ' + esc(v.warnings.join('; ')) : ''}</p>`
  const p = v.problem
  const where = p === null ? '' : ` at ${p.file}${p.line === null ? '' : `:${p.line}`}${p.seq === null ? '' : ` (seq ${p.seq})`}`
  return `<p class="verify bad">Integrity of the chains read: <b>VERIFICATION FAILED</b>${esc(where)}: ${esc(p?.reason ?? 'unknown problem')} — ${esc(what)}. The counts below come from a log that does not verify.</p>`
}

function adminChangesHtml (changes: readonly AdminRecord[]): string {
  if (changes.length === 0) return '<h2>Admin changes in the period</h2><p>None.</p>'
  const rows = changes.map((c) => `<tr><td>${esc(c.ts)}</td><td>${esc(c.actor)}</td><td>${esc(c.role)}</td><td>${esc(c.action)}</td><td>${esc(c.target)}</td>` +
    `<td><code>${esc(jsonText(c.before))}</code></td><td><code>${esc(jsonText(c.after))}</code></td><td>${esc(c.writer)}</td></tr>`).join('\n')
  return `<h2>Admin changes in the period (${fmt.format(changes.length)})</h2>
<table class="admin"><thead><tr><th>Time (UTC)</th><th>Actor</th><th>Role</th><th>Action</th><th>Target</th><th>Before</th><th>After</th><th>Writer</th></tr></thead><tbody>
${rows}
</tbody></table>`
}

function legendHtml (r: UsageReport): string {
  const rules = new Set<string>(Object.keys(r.totals.refusalsByRule))
  for (const row of r.rows) for (const k of Object.keys(row.refusalsByRule)) rules.add(k)
  if (rules.size === 0) return ''
  const items = [...rules].sort().map((k) => `<dt><code>${esc(k)}</code></dt><dd>${esc(describeRule(k))}</dd>`).join('\n')
  return `<h2>Rule ids</h2><dl class="legend">
${items}
</dl>`
}

/**
 * The report as one self-contained HTML page. `source` says where the records came from; `ctx` (reportContext)
 * adds the writers, classifications, admin changes and the verification result.
 */
export function reportHtml (r: UsageReport, source: string, ctx?: ReportContext): string {
  const byCountry = new Map<string, { allowed: number, denied: number }>()
  const byModel = new Map<string, { tokensIn: number, tokensOut: number }>()
  for (const row of r.rows) {
    const c = byCountry.get(row.country) ?? { allowed: 0, denied: 0 }
    c.allowed += row.allowed
    c.denied += row.denied
    byCountry.set(row.country, c)
    const m = byModel.get(row.model) ?? { tokensIn: 0, tokensOut: 0 }
    m.tokensIn += row.tokensIn
    m.tokensOut += row.tokensOut
    byModel.set(row.model, m)
  }
  const allowC = '#2b7a4b'
  const denyC = '#b3261e'
  const charts = [
    dailyChart(r.daily),
    barChart('Interactions by caller country (top 20)', topBy([...byCountry.entries()], (v) => v.allowed + v.denied, 20).map(([k, v]) => ({
      label: k, parts: [{ value: v.allowed, color: allowC, name: 'allowed' }, { value: v.denied, color: denyC, name: 'denied' }]
    })), [{ name: 'allowed', color: allowC }, { name: 'denied', color: denyC }]),
    barChart('Tokens by model', topBy([...byModel.entries()], (v) => v.tokensIn + v.tokensOut, 20).map(([k, v]) => ({
      label: k, parts: [{ value: v.tokensIn, color: '#3465a4', name: 'tokens in' }, { value: v.tokensOut, color: '#f0a030', name: 'tokens out' }]
    })), [{ name: 'tokens in', color: '#3465a4' }, { name: 'tokens out', color: '#f0a030' }]),
    barChart('Refusals by rule', topBy(Object.entries(r.totals.refusalsByRule), (v) => v, 20).map(([k, v]) => ({
      label: k, parts: [{ value: v, color: denyC, name: 'refusals' }]
    })), [{ name: 'refusals', color: denyC }])
  ].join('\n')
  const t = r.totals
  const classOf = (model: string): string => ctx?.classifications.get(model)?.join(', ') ?? '—'
  const head = ['Country', 'Location tier', 'Model', 'Classification (ECCN)', 'Key tier', 'Interactions', 'Allowed', 'Denied', 'Shadow-denied', 'Cross-border', 'Outcome unknown', 'Tokens in', 'Tokens out', 'Refusals by rule']
  const body = r.rows.map((row) => `<tr><td>${esc(row.country)}</td><td>${esc(row.locationTier)}</td><td>${esc(row.model)}</td><td>${esc(classOf(row.model))}</td><td>${esc(row.tier)}</td>` +
    [row.interactions, row.allowed, row.denied, row.shadowDenied, row.crossBorder, row.unknownOutcome, row.tokensIn, row.tokensOut].map((v) => `<td class="n">${fmt.format(v)}</td>`).join('') +
    `<td>${esc(Object.entries(row.refusalsByRule).map(([k, v]) => `${k}: ${v}`).join(', '))}</td></tr>`).join('\n')
  const writers = ctx === undefined || ctx.writers.length === 0
    ? esc(source)
    : `${esc(source)} — ${ctx.writers.length} writer(s): ${ctx.writers.map((w) => `<b class="writer">${esc(w)}</b>`).join(', ')}`
  return htmlPage(`geogate usage report ${esc(r.period)}`, `<h1>geogate usage report — ${esc(r.period)}</h1>
<p>Period ${esc(r.from)} to ${esc(r.to)} (UTC, end exclusive). Source: ${writers}. Generated ${esc(r.generatedAt)}.
Every interaction in the audit log for the period is counted (the log records cross-border interactions, or all of them with <code>audit.scope: all</code>).
Country <code>unknown</code>: the caller could not be located; <code>internal</code>: a caller on this network (loopback, private, link-local, <code>server.internalNetworks</code>).</p>
${verificationHtml(ctx?.verification ?? null)}
<div class="kpi"><div><b>${fmt.format(t.interactions)}</b>interactions</div><div><b>${fmt.format(t.allowed)}</b>allowed</div><div><b>${fmt.format(t.denied)}</b>denied</div>
<div><b>${fmt.format(t.tokensIn)}</b>tokens in</div><div><b>${fmt.format(t.tokensOut)}</b>tokens out</div><div><b>${fmt.format(t.unknownOutcome)}</b>outcome unknown</div></div>
${charts}
<h2>Per country × model × tier</h2>
<table class="rows"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>
${body}
</tbody></table>
${legendHtml(r)}
${adminChangesHtml(ctx?.adminChanges ?? [])}`)
}

/** One self-contained page in the report style (the usage report, the replay report). `title` is already escaped. */
export function htmlPage (title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#1b1b1b}
h1{font-size:1.4em}table{border-collapse:collapse;margin-top:1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}figure{margin:1.5em 0;overflow-x:auto}figcaption{font-weight:600;margin-bottom:.4em}
svg text{font:12px system-ui,sans-serif;fill:#1b1b1b}.kpi{display:flex;gap:2em;flex-wrap:wrap}.kpi div{border:1px solid #ddd;padding:.6em 1em}
.kpi b{display:block;font-size:1.3em}.verify{padding:.5em 1em;border:1px solid #ccc}.verify.ok{border-color:#2b7a4b}.verify.bad{border-color:#b3261e;background:#fbeaea}
table.admin code{white-space:pre-wrap;word-break:break-all}dl.legend dt{margin-top:.4em}dl.legend dd{margin-left:1.5em}
</style></head><body>
${body}
</body></html>
`
}
