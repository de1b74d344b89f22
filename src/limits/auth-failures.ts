import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest, FastifyReply } from 'fastify'
import type { RedisClient } from '../infra/redis.js'
import { RateLimitedError } from '../core/errors.js'
import { canonicalIp } from '../net/address.js'

export type AuthFailureGuard = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

/**
 * Failed authentications per client IP, kept by @fastify/rate-limit (its Redis store when Redis is
 * configured, so the count is shared by every replica; its LRU store otherwise). Only failures are counted,
 * so a good key costs nothing and is never locked out by a neighbour behind the same NAT; past the limit a
 * failure is answered 429 instead of 401. If Redis is down the guard is skipped (skipOnError): the request
 * is refused with 401 anyway, and the guard must not turn an outage into a lock-out.
 * The IP is the one the client-ip stage resolved (trusted proxies only), never a raw X-Forwarded-For.
 */
export interface AuthFailureOptions {
  /** failures per minute per address before 429 (limiter.authFailuresPerMinute); 0 turns the guard off */
  max: number
  keyPrefix: string
  redis: RedisClient | null
}

export async function authFailureGuard (app: FastifyInstance, o: AuthFailureOptions, plane: 'data' | 'admin'): Promise<AuthFailureGuard> {
  const max = o.max
  if (max === 0) return async () => {}
  await app.register(rateLimit, {
    global: false,
    max,
    timeWindow: 60_000,
    skipOnError: true,
    nameSpace: `${o.keyPrefix}authfail:${plane}:`,
    ...(o.redis !== null ? { redis: o.redis } : {}),
    keyGenerator: (req: FastifyRequest) => (req.ctx as FastifyRequest['ctx'] | null | undefined)?.clientIp ?? canonicalIp(req.ip) ?? req.ip
  })
  const check = app.createRateLimit()
  return async (request, reply) => {
    const r = await check(request)
    if (r.isAllowed || !r.isExceeded) return
    reply.header('retry-after', String(Math.max(1, r.ttlInSeconds)))
    throw new RateLimitedError('Too many failed authentication attempts from this address; retry after the time in Retry-After')
  }
}

/** The guard's options from a running configuration. */
export function authFailureOptions (rt: { config: { limiter: { authFailuresPerMinute: number }, redis: { keyPrefix: string } }, redis: RedisClient | null }): AuthFailureOptions {
  return { max: rt.config.limiter.authFailuresPerMinute, keyPrefix: rt.config.redis.keyPrefix, redis: rt.redis }
}
