/*
 * `geogate policy replay`: every recorded interaction re-decided under a candidate policy, and what would flip —
 * newly refused, newly allowed — by country × model × org × rule. The candidate's schedule applies as of each
 * record's time. Records without policyVersion/capabilities (written before they carried them) are re-decided on
 * what they carry and counted as approximate.
 */
import type { Config } from '../config/schema/index.js'
import { readRecords, type RecordFilter } from '../audit/read.js'
import { csvCell } from '../audit/export.js'
import { barChart, esc, fmt, htmlPage } from '../audit/report.js'
import { stagedSnapshots } from './policy-tests.js'
import { recordedVerdict, redecide } from './redecide.js'

export type Flip = 'newly-refused' | 'newly-allowed'

export interface ReplayRow {
  change: Flip
  country: string
  model: string
  org: string
  /** newly refused: the candidate's rule; newly allowed: the rule that refused before */
  rule: string
  interactions: number
  /** of which re-decided on incomplete records */
  approximate: number
}

export interface ReplayReport {
  source: string
  candidate: string
  from: string | null
  to: string | null
  generatedAt: string
  /** interaction records read */
  records: number
  replayed: number
  /** not re-decidable (the pipeline failed before the policy) */
  skipped: number
  approximate: number
  newlyRefused: number
  newlyAllowed: number
  /** refused before and after, by another rule */
  ruleChanged: number
  unchanged: number
  /** records whose key the candidate does not have (their recorded tier was used) */
  unknownKeys: number
  rows: ReplayRow[]
}

export interface ReplayOptions {
  filter?: Pick<RecordFilter, 'from' | 'to'>
  onProgress?: (records: number) => void
  /** every how many records onProgress is called */
  progressEvery?: number
}

export async function replayAudit (dir: string, candidate: Readonly<Config>, opts: ReplayOptions = {}): Promise<ReplayReport> {
  const policyAt = stagedSnapshots(candidate)
  const every = opts.progressEvery ?? 100_000
  const rows = new Map<string, ReplayRow>()
  const rep: ReplayReport = {
    source: dir,
    candidate: policyAt(Date.now()).hash,
    from: opts.filter?.from ?? null,
    to: opts.filter?.to ?? null,
    generatedAt: new Date().toISOString(),
    records: 0, replayed: 0, skipped: 0, approximate: 0, newlyRefused: 0, newlyAllowed: 0, ruleChanged: 0, unchanged: 0, unknownKeys: 0, rows: []
  }
  let lastTs = ''
  let policy = policyAt(-Infinity)
  for await (const { record: r } of readRecords(dir, { ...opts.filter, kind: 'interaction' })) {
    if (r.kind !== 'interaction') continue
    if (++rep.records % every === 0) opts.onProgress?.(rep.records)
    const before = recordedVerdict(r)
    if (before === null) { rep.skipped++; continue }
    if (r.ts !== lastTs) { policy = policyAt(Date.parse(r.ts)); lastTs = r.ts }
    const again = redecide(r, policy)
    if (again === null) { rep.skipped++; continue }
    rep.replayed++
    if (again.inputs.approximate) rep.approximate++
    if (again.inputs.keyFromRecord) rep.unknownKeys++
    const refused = !again.decision.allow
    let change: Flip | null = null
    if (refused && !before.refused) change = 'newly-refused'
    else if (!refused && before.refused) change = 'newly-allowed'
    else if (refused && before.refused && again.decision.rule !== before.rule) rep.ruleChanged++
    else rep.unchanged++
    if (change === null) continue
    if (change === 'newly-refused') rep.newlyRefused++
    else rep.newlyAllowed++
    const rule = change === 'newly-refused' ? again.decision.rule : before.rule
    const country = r.country ?? 'unknown'
    const model = r.model ?? '-'
    const org = r.org ?? '-'
    const k = `${change}\u0000${country}\u0000${model}\u0000${org}\u0000${rule}`
    let row = rows.get(k)
    if (row === undefined) { row = { change, country, model, org, rule, interactions: 0, approximate: 0 }; rows.set(k, row) }
    row.interactions++
    if (again.inputs.approximate) row.approximate++
  }
  opts.onProgress?.(rep.records)
  rep.rows = [...rows.values()].sort((a, b) => (a.change < b.change ? -1 : a.change > b.change ? 1 : 0) || b.interactions - a.interactions ||
    (a.country < b.country ? -1 : a.country > b.country ? 1 : 0))
  return rep
}

export function formatReplay (r: ReplayReport): string {
  const out = [
    `replay of ${r.source} under ${r.candidate}${r.from === null && r.to === null ? '' : ` (${r.from ?? '…'} to ${r.to ?? '…'})`}`,
    `  ${fmt.format(r.records)} interaction(s) read, ${fmt.format(r.replayed)} re-decided (${fmt.format(r.approximate)} approximate: older records), ${fmt.format(r.skipped)} not re-decidable`,
    `  newly refused ${fmt.format(r.newlyRefused)}, newly allowed ${fmt.format(r.newlyAllowed)}, refused by another rule ${fmt.format(r.ruleChanged)}, unchanged ${fmt.format(r.unchanged)}` +
      (r.unknownKeys > 0 ? `; ${fmt.format(r.unknownKeys)} with a key the candidate lacks (decided on their recorded tier)` : '')
  ]
  if (r.rows.length > 0) {
    const head = ['change', 'country', 'model', 'org', 'rule', 'interactions']
    const cells = r.rows.map((x) => [x.change, x.country, x.model, x.org, x.rule, fmt.format(x.interactions) + (x.approximate > 0 ? ` (${fmt.format(x.approximate)} approx.)` : '')])
    const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)))
    out.push('', head.map((h, i) => h.padEnd(w[i] as number)).join('  '), ...cells.map((c) => c.map((v, i) => v.padEnd(w[i] as number)).join('  ')))
  }
  return out.join('\n') + '\n'
}

export const REPLAY_CSV_COLUMNS = ['change', 'country', 'model', 'org', 'rule', 'interactions', 'approximate'] as const

export function replayCsv (r: ReplayReport): string {
  const lines = [REPLAY_CSV_COLUMNS.join(',')]
  for (const row of r.rows) lines.push(REPLAY_CSV_COLUMNS.map((c) => csvCell(row[c])).join(','))
  return lines.join('\r\n') + '\r\n'
}

export function replayHtml (r: ReplayReport): string {
  const refC = '#b3261e'
  const allC = '#2b7a4b'
  const byCountry = new Map<string, { refused: number, allowed: number }>()
  for (const row of r.rows) {
    const c = byCountry.get(row.country) ?? { refused: 0, allowed: 0 }
    if (row.change === 'newly-refused') c.refused += row.interactions
    else c.allowed += row.interactions
    byCountry.set(row.country, c)
  }
  const chart = byCountry.size === 0
    ? ''
    : barChart('What flips, by caller country (top 20)', [...byCountry.entries()].sort((a, b) => (b[1].refused + b[1].allowed) - (a[1].refused + a[1].allowed)).slice(0, 20).map(([k, v]) => ({
      label: k, parts: [{ value: v.refused, color: refC, name: 'newly refused' }, { value: v.allowed, color: allC, name: 'newly allowed' }]
    })), [{ name: 'newly refused', color: refC }, { name: 'newly allowed', color: allC }])
  const body = r.rows.map((x) => `<tr><td>${esc(x.change)}</td><td>${esc(x.country)}</td><td>${esc(x.model)}</td><td>${esc(x.org)}</td><td>${esc(x.rule)}</td>` +
    `<td class="n">${fmt.format(x.interactions)}</td><td class="n">${fmt.format(x.approximate)}</td></tr>`).join('\n')
  return htmlPage(`geogate policy replay ${esc(r.candidate)}`, `<h1>geogate policy replay — candidate ${esc(r.candidate)}</h1>
<p>Source: ${esc(r.source)}${r.from === null && r.to === null ? '' : `, ${esc(r.from ?? '…')} to ${esc(r.to ?? '…')} (UTC, end exclusive)`}. Generated ${esc(r.generatedAt)}.
Every recorded interaction is re-decided under the candidate policy (its schedule as of each record's time); limits and quotas are not replayed.
Approximate: records written before they carried capabilities and the other inputs of a decision.</p>
<div class="kpi"><div><b>${fmt.format(r.replayed)}</b>re-decided</div><div><b>${fmt.format(r.newlyRefused)}</b>newly refused</div><div><b>${fmt.format(r.newlyAllowed)}</b>newly allowed</div>
<div><b>${fmt.format(r.ruleChanged)}</b>refused by another rule</div><div><b>${fmt.format(r.approximate)}</b>approximate</div><div><b>${fmt.format(r.skipped)}</b>not re-decidable</div></div>
${chart}
<h2>What flips, per country × model × org × rule</h2>
<table><thead><tr>${['Change', 'Country', 'Model', 'Org', 'Rule', 'Interactions', 'Approximate'].map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>
${body}
</tbody></table>`)
}
