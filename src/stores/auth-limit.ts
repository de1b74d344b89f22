import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest, FastifyReply } from 'fastify'
import type { Runtime } from '../runtime.js'
import { RateLimitedError } from '../errors.js'
import { canonicalIp } from '../pipeline/client-ip.js'
import { adminPrincipal } from '../admin/auth.js'

export type AuthFailureGuard = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

/**
 * Failed authentications per client IP, kept by @fastify/rate-limit (its Redis store when Redis is
 * configured, so the count is shared by every replica; its LRU store otherwise). Only failures are counted,
 * so a good key costs nothing and is never locked out by a neighbour behind the same NAT; past the limit a
 * failure is answered 429 instead of 401. If Redis is down the guard is skipped (skipOnError): the request
 * is refused with 401 anyway, and the guard must not turn an outage into a lock-out.
 * The IP is the one the client-ip stage resolved (trusted proxies only), never a raw X-Forwarded-For.
 */
export async function authFailureGuard (app: FastifyInstance, rt: Runtime, plane: 'data' | 'admin'): Promise<AuthFailureGuard> {
  const max = rt.config.limiter.authFailuresPerMinute
  if (max === 0) return async () => {}
  await app.register(rateLimit, {
    global: false,
    max,
    timeWindow: 60_000,
    skipOnError: true,
    nameSpace: `${rt.config.redis.keyPrefix}authfail:${plane}:`,
    ...(rt.redis !== null ? { redis: rt.redis } : {}),
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

const OPEN_ADMIN_PATHS = new Set(['/healthz', '/readyz'])

/** The admin plane: every request without a valid admin token (health probes aside) counts as a failure. */
export async function registerAdminAuthGuard (admin: FastifyInstance, rt: Runtime): Promise<void> {
  const guard = await authFailureGuard(admin, rt, 'admin')
  admin.addHook('onRequest', async (request, reply) => {
    if (OPEN_ADMIN_PATHS.has(request.url.split('?')[0] ?? '')) return
    try {
      adminPrincipal(request, rt.config.admin)
    } catch {
      await guard(request, reply)
    }
  })
}
