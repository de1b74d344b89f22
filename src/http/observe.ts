import type { Metrics } from '../infra/metrics.js'
import type { PolicySnapshot } from '../policy/snapshot.js'
import { isCrossBorder, servingRegionOf } from '../policy/cross-border.js'
import type { RequestContext } from './context.js'
import { ANONYMIZER_TRAITS } from '../core/anonymizers.js'

const COUNTRY = /^[A-Z]{2}$/

/** What decided a finished request: the limit that refused, the policy rule, or (no decision) what the status says refused. */
export function ruleOf (ctx: RequestContext, status: number): string {
  if (ctx.limit !== null && !ctx.limit.allowed) return ctx.limit.rule ?? 'limit'
  return ctx.decision?.rule ?? (status === 401 ? 'identity' : status >= 400 && status < 500 ? 'request' : 'none')
}

/**
 * A finished request (the onResponse point) in the metrics: what was decided, for whom, from where. Cheap: a few
 * counter increments; the first-sighting check touches Redis at most once per key and country per replica.
 */
export function observeRequest (m: Metrics, ctx: RequestContext, status: number, policy: PolicySnapshot, backends: Readonly<Record<string, { region: string }>>): void {
  const decision = ctx.decision
  const model = m.modelLabel(ctx.shape?.model ?? null, policy.models)
  const denied = (decision !== null && !decision.allow && !decision.shadow) || status === 429 || status === 503
  // No policy decision (bad key, bad request): still a refusal when the status says so, named by what refused.
  const decisionLabel = decision === null ? (status < 400 ? 'none' : 'deny') : denied ? 'deny' : 'allow'
  const locationTier = decision === null ? 'none' : m.tierLabel(decision.locationTier)
  m.countRequest(decisionLabel, m.ruleLabel(ruleOf(ctx, status)), locationTier, model, status)

  const limit = ctx.limit
  if (limit !== null) {
    const result = limit.allowed ? 'allowed' : limit.retryAfterSeconds === null ? 'unavailable' : 'limited'
    m.countLimitDecision(result, limit.degraded)
  }

  const geo = ctx.geo
  if (geo === null) return
  const d = denied ? 'deny' : 'allow'
  const a = geo.anonymizer
  if (a.any) {
    for (const t of ANONYMIZER_TRAITS) if (a[t.flag]) m.countAnonymizer(t.metric, d)
  }
  const countryLabel = geo.country !== null && COUNTRY.test(geo.country) ? geo.country : geo.country === null ? 'unknown' : 'other'
  const region = servingRegionOf(policy, backends, ctx.shape?.model ?? null, ctx.backend)
  const internal = ctx.client?.internal === true
  const country = internal ? 'internal' : countryLabel
  if (decision !== null && isCrossBorder(geo.country, a.any, region, { internal, internalCrossBorder: policy.locations.internalCrossBorder })) m.countCrossBorder(d, country)
  const p = ctx.principal
  if (p === null || geo.country === null) return
  if (p.country !== undefined && p.country !== geo.country) m.keyCountryMismatch.inc({ key_id: p.keyId })
  m.sighting(p.keyId, geo.country, p.country)
}
