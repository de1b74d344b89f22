import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import type { Runtime } from '../runtime.js'
import { toOpenAIError } from '../errors.js'
import { requireRole } from './auth.js'
import { registerAdminAuthGuard } from '../stores/auth-limit.js'
import { registerExplain } from './explain.js'
import { registerAudit } from './audit.js'
import { registerPolicyAdmin } from './policy.js'

export interface AdminState { ready: boolean }

/**
 * The admin plane: its own listener, never the public port. Health is open; everything else needs a bearer
 * token with role admin (all) or auditor (read-only).
 */
export async function buildAdmin (rt: Runtime, state: AdminState = { ready: true }): Promise<FastifyInstance> {
  const admin = Fastify({ loggerInstance: rt.log.child({ plane: 'admin' }) as FastifyBaseLogger, trustProxy: false })
  admin.decorate('gg', rt)
  admin.decorateRequest('admin', null)
  admin.setErrorHandler(async (err: FastifyError, request, reply) => {
    const { status, body } = toOpenAIError(err)
    if (status >= 500) request.log.error({ err }, 'admin request failed')
    reply.code(status).type('application/json')
    return body
  })
  // failed admin authentications per client IP (token brute force): 429 past limiter.authFailuresPerMinute
  await registerAdminAuthGuard(admin, rt)
  const anyRole = requireRole(() => rt.config.admin, 'admin', 'auditor')

  admin.get('/healthz', async () => ({ status: 'ok' }))
  admin.get('/readyz', async (_req, reply) => {
    if (!state.ready) return await reply.code(503).send({ status: 'draining' })
    return { status: 'ready' }
  })
  admin.get('/metrics', { preHandler: anyRole }, async (_req, reply) => {
    reply.type(rt.metrics.registry.contentType)
    return await rt.metrics.registry.metrics()
  })
  await registerExplain(admin, rt)
  await registerAudit(admin, rt)
  await registerPolicyAdmin(admin, rt)
  return admin
}
