/*
 * The data plane. One request flows one way through the stages in src/http, each a plain function:
 *
 *   client ──► client-ip ─► identity ─► endpoint ─► geo ─► policy ─► backend ─► limits ─┬─► forward ──► backend
 *   (onRequest)  (socket/XFF)  (401)    (400/404)  (mmdb)  (451/403)  choice   (429/503)  │   (502/504)
 *                                                                       └─► journal ────┘ (503)
 *                                                                   (written meanwhile)
 *   every ending (response, refusal, abort, shutdown) ─────────────► audit
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { createServer } from 'node:http'
import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import type { Runtime } from '../runtime.js'
import { newContext, type RequestContext } from './context.js'
import { ClientIpResolver } from '../net/forwarded.js'
import { authenticate } from './identity.js'
import { describeRequest, applyOutputClamp } from '../policy/endpoint.js'
import { decide } from '../policy/decide.js'
import { locate } from '../policy/locate.js'
import { isMultipart, readForm } from './multipart.js'
import { answerModels } from '../policy/models.js'
import { applyLimits, settleLimits } from './limits.js'
import { chooseBackend, forward } from './forward.js'
import { routeByObject } from './forward-routes.js'
import { authFailureGuard, authFailureOptions } from '../limits/auth-failures.js'
import { beginRecord, recordInteraction, withdrawRecord } from './audit.js'
import { observeRequest, ruleOf } from './observe.js'
import { rawBodyParser } from './forward-body.js'
import { boundedJsonParser } from '../core/json-depth.js'
import { toOpenAIError, GeoRestrictedError, CapabilityError, NotFoundError, ModelNotFoundError, PartyRestrictedError } from '../core/errors.js'
import { onCountryMismatch } from './party.js'
import { RequestLogger } from '../infra/logger.js'
import type { Logger } from 'pino'

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
/** the request id's field in log lines: Fastify's requestIdLogLabel, and the access line's */
const REQ_ID_LABEL = 'reqId'

/**
 * How often Node looks for connections past headersTimeout / requestTimeout. Its default, 30 s, lets a slowloris
 * hold a socket for up to the timeout plus 30 s (60 s against a 30 s headersTimeout); a quarter of the shorter
 * timeout (at least 100 ms) cuts one within 1.25 × the timeout.
 */
export function checkingIntervalMs (headersTimeoutMs: number, requestTimeoutMs: number): number {
  const shortest = requestTimeoutMs > 0 ? Math.min(headersTimeoutMs, requestTimeoutMs) : headersTimeoutMs
  return Math.max(100, Math.floor(shortest / 4))
}

export function fastifyOptions (rt: Runtime): FastifyServerOptions {
  const s = rt.config.server
  return {
    loggerInstance: rt.log as FastifyBaseLogger,
    bodyLimit: s.bodyLimit,
    routerOptions: { maxParamLength: 512 },
    // Fastify's requestTimeout defaults to 0: without these a slow client holds a socket forever.
    serverFactory: (handler) => {
      const server = createServer({
        maxHeaderSize: s.maxHeaderSize,
        requestTimeout: s.requestTimeoutMs,
        headersTimeout: s.headersTimeoutMs,
        keepAliveTimeout: s.keepAliveTimeoutMs,
        connectionsCheckingInterval: checkingIntervalMs(s.headersTimeoutMs, s.requestTimeoutMs)
      }, handler)
      return server
    },
    // Client IP is resolved by net/forwarded.ts from trusted peers only; Fastify's trustProxy takes the
    // left-most X-Forwarded-For entry, which the client controls (fastify#5865).
    trustProxy: false,
    // Fastify's own two lines per request (incoming, completed) are replaced by one access line at onResponse.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: REQ_ID_LABEL }),
    // request.log: made on its first line (infra/logger.ts), not per request
    childLoggerFactory: (logger, bindings, opts) => new RequestLogger(logger as Logger, bindings, opts) as unknown as FastifyBaseLogger,
    // A caller's x-request-id is kept when well formed, so traces join up; otherwise a fresh UUID.
    genReqId: (req) => {
      const h = req.headers['x-request-id']
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID()
    },
    return503OnClosing: true
  }
}

/** The one ending of every interaction: normal, refused, cut short (caller gone, backend failed) or shut down. */
function endInteraction (request: FastifyRequest, reply: FastifyReply, rt: Runtime, cut?: 'client_abort'): void {
  const ctx = request.ctx
  if (ctx === null) return
  if (cut !== undefined && ctx.outcome === 'ok') ctx.outcome = cut
  if (!ctx.audited) recordInteraction(request, reply, rt)
  // Not awaited: the response is out, and the store batches settles off the request (limits/redis-store.ts).
  settleLimits(ctx).catch((err: unknown) => { request.log.error({ err }, 'settling limits failed') })
}

/**
 * The one access-log line of a request. Never the query: it may hold what the caller typed. Written through the
 * app's logger with the reqId first: byte for byte the line request.log would write (a child's bindings come first),
 * without making the request's child logger for it (see RequestLogger). No route sets a log level of its own.
 */
function accessLine (log: FastifyBaseLogger, request: FastifyRequest, ctx: RequestContext, status: number): void {
  if (ctx.logged) return
  ctx.logged = true
  const q = request.url.indexOf('?')
  log[ctx.config.log.accessLevel]({
    [REQ_ID_LABEL]: request.id,
    method: request.method,
    path: q === -1 ? request.url : request.url.slice(0, q),
    status,
    rule: ruleOf(ctx, status),
    ms: Math.round(Number(process.hrtime.bigint() - ctx.startedAt) / 1e4) / 100,
    ...(ctx.outcome === 'ok' ? {} : { outcome: ctx.outcome })
  }, 'request')
}

export async function buildApp (rt: Runtime, opts: Partial<FastifyServerOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify({ ...fastifyOptions(rt), ...opts })
  app.decorate('gg', rt)
  app.decorateRequest('ctx', null as unknown as never)
  // JSON is parsed by Fastify (and rewritten by forward when something in it changes); any other body arrives as a raw stream (see multipart.ts).
  app.addContentTypeParser('*', rawBodyParser(rt.config.server.bodyLimit))
  // Fastify's JSON parser, behind a nesting bound (core/json-depth.ts MAX_JSON_DEPTH): too deep is a 400. The text
  // of a body with plain keys is kept: forwarded as sent when no stage changes the body (forward-body.ts jsonBodyFor).
  const json = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, boundedJsonParser(json, (request: FastifyRequest, text) => {
    if (request.ctx !== null) request.ctx.jsonText = text
  }))
  // Trusted proxies are compiled once; rebuilt only if a reload hands the runtime another list.
  let proxies = rt.config.server.trustedProxies
  let clientIp = new ClientIpResolver(proxies, rt.config.server.internalNetworks)

  const guardAuth = await authFailureGuard(app, authFailureOptions(rt), 'data')
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
    if (rt.config.server.trustedProxies !== proxies) {
      proxies = rt.config.server.trustedProxies
      clientIp = new ClientIpResolver(proxies, rt.config.server.internalNetworks)
    }
    const client = clientIp.resolve(request.raw.socket.remoteAddress ?? '', request.headers)
    // The one read of the policy for this request (see RequestContext.policy); both swap together on a change.
    request.ctx = newContext(client.ip, rt.policy.snapshot(), rt.config)
    request.ctx.client = client
    // Fastify runs onResponse only once the response finished; a caller hanging up (or a response destroyed
    // mid-stream) ends here instead, so every interaction reaches the audit exactly once.
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return
      endInteraction(request, reply, rt, 'client_abort')
      accessLine(app.log, request, request.ctx, reply.statusCode)
    })
    try {
      request.ctx.principal = authenticate(request.headers, request.ctx.policy)
    } catch (err) {
      await guardAuth(request, reply)
      throw err
    }
  })

  app.addHook('preHandler', async (request, reply) => {
    const ctx = request.ctx
    const policy = ctx.policy
    // A multipart upload is read (bounded) so the policy sees its model; the same bytes are forwarded.
    let body: unknown = request.body
    const ct = request.headers['content-type']
    if (isMultipart(ct) && body instanceof Readable) {
      const form = await readForm(body, ct ?? '', ctx.config.server.bodyLimit)
      request.body = form.stream()
      body = form
    }
    const shape = describeRequest(request.method, request.url, body)
    if (ctx.principal === null || ctx.client === null) { ctx.shape = shape; return }
    // No model in the body: the backend that created the object (and its model), or a 404 that is no interaction
    await routeByObject(rt, shape, ctx)
    ctx.shape = shape
    ctx.geo = locate(rt.geo, ctx.client)
    const decision = decide(ctx.shape, ctx.geo, ctx.principal, policy, ctx.client)
    ctx.decision = decision
    if (decision.countryMismatch !== undefined) onCountryMismatch(request, rt, ctx.principal, decision)
    ctx.policyVersion = policy.hash
    if (!decision.allow && !decision.shadow) {
      if (decision.code === 'party_restricted') throw new PartyRestrictedError(decision.message)
      if (decision.status === 451) {
        reply.header('link', `<${policy.blockedByUrl}>; rel="blocked-by"`)
        throw new GeoRestrictedError(decision.message)
      }
      if (decision.status === 404) throw new ModelNotFoundError(ctx.shape.model ?? '')
      throw new CapabilityError(decision.message)
    }
    // a clamped body is no longer the caller's text
    if (decision.clampOutputTokens !== undefined && applyOutputClamp(ctx.shape.endpoint, request.body, decision.clampOutputTokens)) ctx.jsonText = null
    if (ctx.shape.endpoint === 'models') return
    // The backend is chosen and the in-flight journal entry's write begun; it runs while the limits are checked
    // (Redis), and forward() waits for it before the backend is asked (audit.ts beginRecord, awaitRecord).
    chooseBackend(request, rt)
    beginRecord(request, rt)
    try {
      await applyLimits(request, reply, rt, decision)
    } catch (err) {
      withdrawRecord(request, rt)
      throw err
    }
  })

  app.addHook('onResponse', async (request, reply) => {
    endInteraction(request, reply, rt)
    const ctx = request.ctx
    // null: the request failed before onRequest set it up (e.g. a body Fastify refused): nothing to observe
    if (ctx === null) return
    observeRequest(rt.metrics, ctx, reply.statusCode, ctx.policy, ctx.config.backends)
    accessLine(app.log, request, ctx, reply.statusCode)
  })

  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    const { status, body } = toOpenAIError(err)
    // A refusal for want of an audit record is logged (warn, with its reason) where it is decided; a caller that
    // hung up is no failure of the gateway (its access line says outcome client_abort).
    if (status >= 500 && err.code !== 'GG_AUDIT_UNAVAILABLE' && request.ctx?.outcome !== 'client_abort') request.log.error({ err }, 'request failed')
    reply.code(status).type('application/json')
    return body
  })

  app.setNotFoundHandler(async (request) => {
    throw new NotFoundError(`Unknown endpoint ${request.method} ${request.url.split('?')[0] ?? ''}`)
  })

  app.route({
    method: ['GET', 'POST', 'DELETE'],
    url: '/v1/*',
    handler: async (request, reply) => {
      // /v1/models is answered here, from the policy; everything else is forwarded
      const ctx = request.ctx
      if (ctx.shape?.endpoint === 'models') return answerModels(ctx.decision, ctx.shape.model, ctx.policy)
      await forward(request, reply, rt)
    }
  })

  return app
}
