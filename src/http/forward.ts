import { PassThrough, Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { Backend, InFlight } from '../infra/backends.js'
import type { RequestContext } from './context.js'
import type { Usage } from '../core/types.js'
import { upstreamHeaders, downstreamHeaders } from './forward-headers.js'
import { jsonBodyFor, wantsUsageChunk } from './forward-body.js'
import { SseUsageTap, JsonUsageTap, jsonAnswerUsage } from './forward-usage.js'
import { ModelRename } from './forward-model.js'
import { awaitRecord, beginRecord } from './audit.js'
import { createdId, createdIdFromEvent, createdIdFromHead } from './forward-routes.js'
import { BadGatewayError, GatewayTimeoutError, ModelNotFoundError, NotFoundError, UnavailableError, toOpenAIError } from '../core/errors.js'
import { Cancel } from '../core/cancel.js'

/*
 * forward: the permitted request goes to the backend serving its model, the answer streams back.
 *
 *   body ─► rewrite (model, include_usage) ─► audit journal (durable) ─► undici Pool ─► backend
 *   client ◄─ SSE/JSON usage tap (pass-through, reads usage on the side) ◄─ response body
 *
 * Endings: the client hanging up aborts the upstream request (AbortSignal); SIGTERM aborts what is left
 * after the grace period (BackendPools.abortAll); a backend failure before any byte reached the client is
 * answered 502/504, after it the client response is ended (SSE: with an error event).
 */

/**
 * A JSON answer that says its length, up to this many bytes, is read whole and sent as one buffer: no stream stage
 * per request, and the usage is read from the parsed body. Longer (or chunked) answers stream through the tap.
 */
const WHOLE_ANSWER_MAX = 256 * 1024
const DECIMAL = /^\d{1,9}$/

const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

function errorCode (err: unknown): string {
  const e = err as { code?: unknown, cause?: { code?: unknown } } | null
  if (typeof e?.code === 'string') return e.code
  if (typeof e?.cause?.code === 'string') return e.cause.code
  return 'unknown'
}

/** undici failure → the caller's error: timeouts 504 (as nginx answers a connect timeout too), else 502. */
function upstreamError (err: unknown, backend: string): Error {
  const code = errorCode(err)
  if (TIMEOUTS.has(code)) return new GatewayTimeoutError(`${backend} (${code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect' : code === 'UND_ERR_HEADERS_TIMEOUT' ? 'headers' : 'body'} timeout)`, { cause: err })
  return new BadGatewayError(`${backend} (${code})`, { cause: err })
}

function sseErrorEvent (err: Error): Buffer {
  // Leading blank lines end any half-sent event, so the error arrives as an event of its own; OpenAI SDKs
  // throw an APIError on a data chunk carrying `error`.
  return Buffer.from(`\n\ndata: ${JSON.stringify(toOpenAIError(err).body)}\n\n`)
}

function secondsSince (t: bigint): number { return Number(process.hrtime.bigint() - t) / 1e9 }

/**
 * The backend a permitted request goes to (ctx.upstream, and ctx.backend for its record): the one that created the
 * stored object it names, else one serving its model for the caller's place. Chosen before the limits are checked,
 * since the journal entry written meanwhile names the serving region; a request nothing serves is charged nothing.
 */
export function chooseBackend (request: FastifyRequest, rt: Runtime): Backend {
  const ctx = request.ctx
  const shape = ctx.shape
  if (shape === null) throw new NotFoundError(`Unknown endpoint ${request.method} ${request.url.split('?')[0] ?? ''}`)
  const model = shape.model
  let backend: Backend | undefined
  if (ctx.route !== null) {
    // a stored object: the backend that created it (forward-routes.ts)
    backend = rt.backends.get(ctx.route)
  } else {
    const modelCfg = model === null ? undefined : ctx.policy.models.get(model)
    if (model === null || modelCfg === undefined) throw new ModelNotFoundError(model ?? '')
    backend = rt.backends.pick(modelCfg, ctx.geo?.country ?? null, ctx.geo?.subdivisions ?? [])
  }
  if (backend === undefined) throw new BadGatewayError(`no backend serves ${model ?? shape.forwardPath}`)
  ctx.upstream = backend
  ctx.backend = { name: backend.name, region: backend.region }
  return backend
}

export async function forward (request: FastifyRequest, reply: FastifyReply, rt: Runtime): Promise<FastifyReply> {
  const ctx = request.ctx
  const backend = ctx.upstream ?? chooseBackend(request, rt)
  const shape = ctx.shape as NonNullable<typeof ctx.shape>
  const model = shape.model
  const modelCfg = model === null ? undefined : ctx.policy.models.get(model)

  const raw = request.body
  let body: string | Readable | null = null
  let dropUsageChunk = false
  if (raw instanceof Readable) {
    // a multipart upload, already read (bounded) by the endpoint stage: the same bytes, untouched
    body = raw
  } else if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    const json = raw as Record<string, unknown>
    body = jsonBodyFor(json, ctx.jsonText, { upstreamModel: modelCfg?.upstreamModel })
    dropUsageChunk = shape.stream && !wantsUsageChunk(json)
  } else if (raw !== undefined && raw !== null) {
    body = JSON.stringify(raw)
  }
  const headers = upstreamHeaders(request.headers, request.id, backend.apiKey, raw instanceof Readable)

  // Write-ahead: nothing reaches the backend before its audit journal entry is durable (or it is refused, 503).
  // The entry's write was begun before the limits were checked (app.ts preHandler); here it is waited for. A path
  // that came here without it (none today) begins it now: the wait is never skipped for an entry in scope.
  if (ctx.journal === null) beginRecord(request, rt)
  try {
    await awaitRecord(request, rt)
  } catch (err) {
    reply.header('retry-after', '1')
    throw err
  }
  // The caller hung up while the journal was written: its record (client_abort) is already queued; not forwarded.
  if (ctx.audited || reply.raw.destroyed) throw new UnavailableError('The caller went away before the request was forwarded')

  const controller = new Cancel()
  const inFlight: InFlight = { ctx, controller }
  rt.backends.track(inFlight)
  // 'close' comes for every ending; before 'finish' it means the caller went away: cancel upstream.
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished && !controller.aborted) controller.abort(new Error('client_abort'))
    countTokens(rt, ctx, model)
    rt.backends.untrack(inFlight)
  })

  const sentAt = process.hrtime.bigint()
  rt.metrics.gatewayLatency.observe(Number(sentAt - ctx.startedAt) / 1e9)
  let res
  try {
    res = await backend.pool.request({
      path: backend.basePath + shape.forwardPath,
      method: request.method as 'GET' | 'POST' | 'DELETE',
      headers,
      body,
      signal: controller
    })
  } catch (err) {
    throw failedBeforeAnswer(err, ctx, backend, controller)
  }
  ctx.upstreamStatus = res.statusCode

  const type = String(res.headers['content-type'] ?? '')
  const sse = type.startsWith('text/event-stream')
  const jsonAnswer = !sse && type.includes('json')
  const onUsage = (u: Usage): void => { ctx.usage = u }
  const onFirstByte = (): void => { if (sse) rt.metrics.timeToFirstToken.observe({ backend: backend.name }, secondsSince(sentAt)) }
  // An answer creating a response or a job: remember which backend holds it, for the requests naming its id
  const created = shape.createsObject === true && res.statusCode < 300
  const remember = (id: string | null): void => { if (id !== null) rt.objects.remember(shape.endpoint, id, { backend: backend.name, model }) }
  // the caller's model name in the answer, not the backend's (only when they differ: no cost otherwise)
  const upstreamName = modelCfg?.upstreamModel
  const rename = upstreamName !== undefined && model !== null && upstreamName !== model && (sse || jsonAnswer)
  const length = res.headers['content-length']
  if (jsonAnswer && !rename && typeof length === 'string' && DECIMAL.test(length) && Number(length) <= WHOLE_ANSWER_MAX) {
    let bytes: Buffer
    try {
      bytes = Buffer.from(await res.body.arrayBuffer())
    } catch (err) {
      throw answerCutShort(err, request, ctx, backend.name, controller)
    }
    rt.metrics.upstreamLatency.observe({ backend: backend.name }, secondsSince(sentAt))
    const answer = jsonAnswerUsage(bytes)
    if (answer.usage !== null) ctx.usage = answer.usage
    if (created) remember(answer.parsed !== null ? createdId(answer.parsed) : createdIdFromHead(bytes))
    reply.code(res.statusCode)
    reply.headers(downstreamHeaders(res.headers, true))
    return reply.send(bytes)
  }
  let out: SseUsageTap | JsonUsageTap | PassThrough
  if (sse) out = new SseUsageTap({ dropUsageChunk, estimatedIn: shape.promptTokens, onUsage, onFirstByte, onFirstData: created ? (p) => { remember(createdIdFromEvent(p)) } : undefined })
  else if (jsonAnswer) out = new JsonUsageTap(onUsage, onFirstByte, created ? (b) => { remember(createdId(b)) } : undefined)
  else out = new PassThrough()

  const upstream = res.body
  upstream.once('end', () => { rt.metrics.upstreamLatency.observe({ backend: backend.name }, secondsSince(sentAt)) })
  upstream.once('error', (err: Error) => {
    if (ctx.outcome === 'client_abort' || (controller.aborted && ctx.outcome === 'ok')) { out.destroy(); return }
    const e = answerCutShort(err, request, ctx, backend.name, controller)
    // Nothing sent yet: Fastify answers with the mapped status. Else end the stream in a way clients notice.
    if (!reply.raw.headersSent) out.destroy(e)
    else if (sse) out.end(sseErrorEvent(e))
    else out.destroy(e)
  })
  if (rename) upstream.pipe(new ModelRename(upstreamName, model)).pipe(out)
  else upstream.pipe(out)
  if (created && !sse) upstream.once('data', (chunk: Buffer) => { remember(createdIdFromHead(chunk)) })

  reply.code(res.statusCode)
  // a renamed body can change length: content-length goes, the body is chunked
  reply.headers(downstreamHeaders(res.headers, !(sse && dropUsageChunk) && !rename))
  reply.send(out)
  return reply
}

/** The backend's answer failed midway: the caller's error (logged unless the caller is gone). */
function answerCutShort (err: unknown, request: FastifyRequest, ctx: RequestContext, backend: string, controller: Cancel): Error {
  if (ctx.outcome === 'client_abort' || (controller.aborted && ctx.outcome === 'ok')) {
    ctx.outcome = 'client_abort'
    return new UnavailableError('The caller went away while the answer was read', { cause: err })
  }
  if (ctx.outcome === 'ok') ctx.outcome = 'backend_error'
  request.log.warn({ err, backend, outcome: ctx.outcome }, 'backend answer cut short')
  return ctx.outcome === 'shutdown' ? new UnavailableError('The gateway is shutting down; retry', { cause: err }) : upstreamError(err, backend)
}

/** The backend never answered: map why, unless the caller is gone or the gateway is shutting down. */
function failedBeforeAnswer (err: unknown, ctx: RequestContext, backend: Backend, controller: Cancel): Error {
  if (controller.aborted) {
    if (ctx.outcome === 'shutdown') return new UnavailableError('The gateway is shutting down; retry', { cause: err })
    if (ctx.outcome === 'ok') ctx.outcome = 'client_abort'
    return upstreamError(err, backend.name)
  }
  ctx.outcome = 'backend_error'
  return upstreamError(err, backend.name)
}

function countTokens (rt: Runtime, ctx: RequestContext, model: string | null): void {
  const u = ctx.usage
  if (u === null) return
  rt.metrics.countTokens(model ?? 'none', ctx.decision?.locationTier ?? 'unknown', u.tokensIn, u.tokensOut)
}
