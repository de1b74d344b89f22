import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { RequestContext } from './context.js'
import type { Decision, Usage } from '../core/types.js'
import { RateLimitedError, UnavailableError } from '../core/errors.js'
import { reservedTokens } from '../limits/limiter.js'

/**
 * Stage 5: charge the request to its key's limits (requests, tokens, concurrency — of the key's tier and of
 * the caller's location tier) and to the location quotas, before anything is forwarded. Tokens are reserved
 * up front (prompt estimate + the output the request may produce) and reconciled with the real usage on
 * settle, so concurrent requests cannot overrun a token budget by more than their reservations.
 */
export async function applyLimits (request: FastifyRequest, reply: FastifyReply, rt: Runtime, decision: Decision): Promise<void> {
  const ctx = request.ctx
  const policy = ctx.policy
  const principal = ctx.principal
  const shape = ctx.shape
  if (principal === null || shape === null || ctx.geo === null) return
  const tier = policy.tiers.get(principal.tier)
  if (tier === undefined) return
  const limit = await rt.limiter.acquire({
    principal,
    tier,
    tierName: principal.tier,
    locationTier: decision.locationTier,
    locationTierConfig: policy.tiers.get(decision.locationTier),
    quotas: policy.quotas,
    geo: ctx.geo,
    shape,
    estimatedTokens: reservedTokens(shape, decision.clampOutputTokens, tier.maxOutputTokens)
  })
  ctx.limit = limit
  if (limit.degraded) request.log.warn({ degraded: true, allowed: limit.allowed, rule: limit.rule, tier: principal.tier }, 'limit decided without Redis')
  const h = limit.headers
  for (const k in h) reply.header(k, h[k] as string)
  if (!limit.allowed) {
    if (limit.retryAfterSeconds === null) {
      reply.header('retry-after', String(Math.max(1, Math.ceil(ctx.config.limiter.breakerMs / 1000))))
      throw new UnavailableError('Rate limiting is unavailable; try again shortly')
    }
    reply.header('retry-after', String(limit.retryAfterSeconds))
    throw new RateLimitedError('Rate limit reached; retry after the time in Retry-After')
  }
}

/**
 * Give back concurrency and reconcile tokens, at the one ending of every interaction (app.ts endInteraction:
 * a finished response, or the connection closing first; settle is idempotent). Usage as the forward stage read it (JSON body or the final
 * streamed usage chunk); if the backend never answered or refused (no tokens made), the reservation is
 * returned in full; if it answered but reported no usage (e.g. the client left mid-stream), the reservation
 * stands as the charge.
 */
export function settleLimits (ctx: RequestContext): Promise<void> {
  const limit = ctx.limit
  if (limit === null || !limit.allowed) return SETTLED
  const usage = ctx.usage ?? (ctx.upstreamStatus === null || ctx.upstreamStatus >= 400 ? NONE : null)
  return limit.settle(usage)
}

const SETTLED = Promise.resolve()
/** no tokens made: the backend never answered, or refused */
const NONE: Usage = Object.freeze({ tokensIn: 0, tokensOut: 0 })
