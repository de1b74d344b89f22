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
}

/**
 * Response headers for a limited request:
 * - RateLimit-Policy / RateLimit (draft-ietf-httpapi-ratelimit-headers: Structured Field lists, one item per
 *   policy; `qu` names the unit where it is not requests — "tokens" is ours, "concurrent-requests" the draft's)
 * - x-ratelimit-{limit,remaining,reset}-{requests,tokens}, as OpenAI sends them (the tightest per-minute
 *   counter of each unit), so OpenAI clients' back-off works unchanged.
 */
export function limitHeaders (meta: readonly CounterMeta[], states: readonly CounterState[]): Record<string, string> {
  const policy: string[] = []
  const current: string[] = []
  let req: CounterState | null = null
  let tok: CounterState | null = null
  for (let i = 0; i < meta.length; i++) {
    const m = meta[i] as CounterMeta
    const s = states[i]
    if (s === undefined) continue
    let p = `"${m.name}";q=${s.limit}`
    if (m.windowSec !== null) p += `;w=${m.windowSec}`
    if (m.unit === 'tokens') p += ';qu="tokens"'
    if (m.unit === 'concurrency') p += ';qu="concurrent-requests"'
    policy.push(p)
    current.push(`"${m.name}";r=${s.remaining}` + (m.unit === 'concurrency' ? '' : `;t=${Math.ceil(s.resetMs / 1000)}`))
    if (m.quota === true) continue
    if (m.unit === 'requests' && (req === null || s.remaining < req.remaining)) req = s
    if (m.unit === 'tokens' && (tok === null || s.remaining < tok.remaining)) tok = s
  }
  const h: Record<string, string> = {}
  if (policy.length > 0) {
    h['ratelimit-policy'] = policy.join(', ')
    h.ratelimit = current.join(', ')
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
