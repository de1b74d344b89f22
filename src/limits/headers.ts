import type { CounterState } from './store.js'

export interface CounterMeta {
  /** policy name in RateLimit-Policy / RateLimit, e.g. tier1-requests */
  name: string
  unit: 'requests' | 'tokens' | 'concurrency'
  /** sliding window length in seconds; null for leases and calendar quotas */
  windowSec: number | null
  /** refusal rule recorded with a 429, e.g. limit:tier1:tokens, quota:cn-monthly */
  rule: string
  quota?: boolean
  /** the counter's limit (the q= of its policy item) */
  limit: number
  /** this counter's item in RateLimit-Policy, e.g. "tier1-tokens";q=100000;w=60;qu="tokens" */
  policyItem: string
  /** the start of its item in RateLimit, up to the remaining count: "tier1-tokens";r= */
  currentItem: string
}

export function counterMeta (name: string, unit: CounterMeta['unit'], windowSec: number | null, rule: string, limit: number, quota?: true): CounterMeta {
  let policyItem = `"${name}";q=${limit}`
  if (windowSec !== null) policyItem += `;w=${windowSec}`
  if (unit === 'tokens') policyItem += ';qu="tokens"'
  if (unit === 'concurrency') policyItem += ';qu="concurrent-requests"'
  return { name, unit, windowSec, rule, ...(quota === true ? { quota } : {}), limit, policyItem, currentItem: `"${name}";r=` }
}

/**
 * Response headers for a limited request:
 * - RateLimit-Policy / RateLimit (draft-ietf-httpapi-ratelimit-headers: Structured Field lists, one item per
 *   policy; `qu` names the unit where it is not requests — "tokens" is ours, "concurrent-requests" the draft's)
 * - x-ratelimit-{limit,remaining,reset}-{requests,tokens}, as OpenAI sends them (the tightest per-minute
 *   counter of each unit), so OpenAI clients' back-off works unchanged.
 *
 * `policyHeader`: the RateLimit-Policy value when the caller built it already from the same `meta` (it depends on
 * the counters alone, never on their state).
 */
export function limitHeaders (meta: readonly CounterMeta[], states: readonly CounterState[], policyHeader: string | null = null): Record<string, string> {
  let policy = ''
  let current = ''
  let req: CounterState | null = null
  let tok: CounterState | null = null
  let complete = true
  for (let i = 0; i < meta.length; i++) {
    const m = meta[i] as CounterMeta
    const s = states[i]
    if (s === undefined) { complete = false; continue }
    if (policyHeader === null) policy += (policy === '' ? '' : ', ') + policyItem(m, s)
    current += (current === '' ? '' : ', ') + m.currentItem + String(s.remaining) + (m.unit === 'concurrency' ? '' : ';t=' + String(Math.ceil(s.resetMs / 1000)))
    if (m.quota === true) continue
    if (m.unit === 'requests' && (req === null || s.remaining < req.remaining)) req = s
    if (m.unit === 'tokens' && (tok === null || s.remaining < tok.remaining)) tok = s
  }
  const h: Record<string, string> = {}
  if (current !== '') {
    h['ratelimit-policy'] = policyHeader === null ? policy : complete ? policyHeader : meta.flatMap((m, i) => { const st = states[i]; return st === undefined ? [] : [policyItem(m, st)] }).join(', ')
    h.ratelimit = current
  }
  const r = req
  const t = tok
  if (r !== null) {
    h['x-ratelimit-limit-requests'] = String(r.limit)
    h['x-ratelimit-remaining-requests'] = String(r.remaining)
    h['x-ratelimit-reset-requests'] = `${Math.ceil(r.resetMs / 1000)}s`
  }
  if (t !== null) {
    h['x-ratelimit-limit-tokens'] = String(t.limit)
    h['x-ratelimit-remaining-tokens'] = String(t.remaining)
    h['x-ratelimit-reset-tokens'] = `${Math.ceil(t.resetMs / 1000)}s`
  }
  return h
}

/** a counter's RateLimit-Policy item, as its state reports the limit (the same one, but for a store that says otherwise) */
function policyItem (m: CounterMeta, s: CounterState): string {
  return s.limit === m.limit ? m.policyItem : counterMeta(m.name, m.unit, m.windowSec, m.rule, s.limit).policyItem
}
