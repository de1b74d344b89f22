import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { ConfigIssue } from '../config/load.js'
import { ForbiddenError, httpErrorOf, toOpenAIError } from '../core/errors.js'
import { registerAdminAuthGuard, adminPrincipal } from './auth.js'
import { registerExplain } from './explain.js'
import { registerAudit } from './audit.js'
import { registerPolicyAdmin } from './policy.js'
import { registerScreening } from './screening.js'
import { registerPolicyCode, READ_ONLY_POSTS } from './policy-code.js'
import type { AdminState } from './state.js'
import { boundedJsonParser } from '../core/json-depth.js'
export type { AdminState }

const OPEN = new Set(['/healthz', '/readyz'])
const READ = new Set(['GET', 'HEAD'])

/**
 * The admin plane: its own listener, never the public port. Health is open; everything else needs a bearer
 * token. Deny by default — every route (present or future) that changes something needs the admin role, so an
 * auditor token can read (GET) and never change.
 */
export async function buildAdmin (rt: Runtime, state: AdminState = { ready: true }): Promise<FastifyInstance> {
  const admin = Fastify({ loggerInstance: rt.log.child({ plane: 'admin' }) as FastifyBaseLogger, trustProxy: false })
  admin.decorate('gg', rt)
  admin.decorateRequest('admin', null)
  // Admin bodies are bounded in depth like the data plane's (a 100,000-deep tier body answered 500)
  const json = admin.getDefaultJsonParser('error', 'error')
  admin.removeContentTypeParser('application/json')
  admin.addContentTypeParser('application/json', { parseAs: 'string' }, boundedJsonParser(json))
  admin.setErrorHandler(async (thrown: FastifyError, request, reply) => {
    // domain errors (policy, explain, report) become HTTP answers here, and only here
    const err = httpErrorOf(thrown) as FastifyError & { issues?: ConfigIssue[], matches?: unknown[] }
    const { status, body } = toOpenAIError(err)
    if (status >= 500) request.log.error({ err }, 'admin request failed')
    reply.code(status).type('application/json')
    // a refused change lists every issue; a screening refusal names the list entries it matched
    if (Array.isArray(err.matches)) return { error: { ...body.error, matches: err.matches } }
    return Array.isArray(err.issues) ? { error: { ...body.error, issues: err.issues } } : body
  })
  admin.setNotFoundHandler(async (request, reply) => {
    reply.code(404)
    return { error: { message: `Unknown admin route ${request.method} ${request.url.split('?')[0] ?? ''}`, type: 'invalid_request_error', code: 'not_found', param: null } }
  })
  // Failed admin authentications per client IP (token brute force): 429 past limiter.authFailuresPerMinute.
  // Registered first: the check below throws 401, which ends the hook chain.
  await registerAdminAuthGuard(admin, rt)
  admin.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0] ?? ''
    if (OPEN.has(path)) return
    const p = adminPrincipal(request, rt.config.admin)
    request.admin = p
    if (!READ.has(request.method) && !(request.method === 'POST' && READ_ONLY_POSTS.has(path)) && p.role !== 'admin') throw new ForbiddenError('Changes need the admin role; this token is read-only')
  })

  admin.get('/healthz', async () => ({ status: 'ok' }))
  // Not ready while draining, or while the audit log cannot make records durable (interactions are refused then).
  admin.get('/readyz', async (_req, reply) => {
    // the policy hash is the same on every replica sharing a store: a deploy can check them against each other
    const policy = rt.live.snapshot().hash
    if (!state.ready) return await reply.code(503).send({ status: 'draining', ready: false, reasons: ['draining: shutting down'], policy })
    const audit = await rt.audit.readiness()
    // Evidence detail: an unsigned log is ready to serve but says so (geogate_audit_signed too).
    const evidence = { writer: rt.audit.writer, signed: rt.audit.publicKeyPem !== null }
    if (!audit.ok) return await reply.code(503).send({ status: 'not ready', ready: false, reasons: audit.reasons, audit: evidence, policy })
    // a stale (or missing) screening list is reported, like a stale GeoIP database; it does not take the replica out
    const list = rt.screening.info()
    if (list === null || list.stale) {
      return { status: 'ready', ready: true, reasons: [], audit: evidence, policy, screening: list === null ? 'no list imported' : `stale: list of ${list.date}, ${Math.floor(list.ageDays)} days old` }
    }
    return { status: 'ready', ready: true, reasons: [], audit: evidence, policy }
  })
  admin.get('/metrics', async (_req, reply) => {
    reply.type(rt.metrics.registry.contentType)
    return state.metrics === undefined ? await rt.metrics.registry.metrics() : await state.metrics()
  })
  await registerExplain(admin, rt)
  await registerAudit(admin, rt)
  await registerPolicyAdmin(admin, rt, state)
  await registerScreening(admin, rt)
  await registerPolicyCode(admin, rt)
  return admin
}
