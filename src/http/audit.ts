import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { AuditEntry, Outcome } from '../audit/types.js'
import type { RequestContext } from './context.js'
import { anonymizerFlagList } from '../core/anonymizers.js'
import { auditIp } from '../audit/ip.js'
import { isCrossBorder, servingRegionOf } from '../policy/cross-border.js'
import { AuditUnavailableError } from '../core/errors.js'

/**
 * Step 7: one audit record per model interaction, permitted or refused.
 *
 * What counts as an interaction: a request from an authenticated caller (a known key) that named an endpoint, i.e.
 * one that reached the policy. An attempt refused for its location, capability, size or limits is an interaction;
 * requests with no or an unknown key (401), or a body that does not parse (400), are not: they carry no identity
 * and anyone could fill the log with them — they are in the access log and the metrics instead.
 * Scope `cross-border` keeps those whose caller is not in the serving region (unknown location and anonymizers
 * count as crossing); `all` keeps every one. Listing models is an interaction only under `all`.
 */

function inScope (ctx: RequestContext, crossBorder: boolean): boolean {
  if (ctx.principal === null || ctx.shape === null) return false
  if (ctx.config.audit.scope === 'all') return true
  return crossBorder && ctx.shape.endpoint !== 'models'
}

function outcomeOf (ctx: RequestContext, denied: boolean, status: number): Outcome {
  if (ctx.outcome !== 'ok') return ctx.outcome
  if (denied) return 'refused'
  if (ctx.upstreamStatus === null && status >= 500) return 'backend_error'
  return 'ok'
}

/** The entry for this request as it stands; `status` null while it is still being forwarded. */
export function buildEntry (request: FastifyRequest, rt: Runtime, status: number | null): AuditEntry | null {
  const ctx = request.ctx
  if (ctx === null || ctx === undefined || ctx.principal === null || ctx.shape === null) return null
  // the policy the decision was made by (taken when the request arrived), not whatever is in force now
  const policy = ctx.policy
  const model = ctx.shape.model
  const modelCfg = model === null ? undefined : policy.models.get(model)
  const servingRegion = servingRegionOf(policy, ctx.config.backends, model, ctx.backend)
  const country = ctx.geo?.country ?? null
  const anonymizer = anonymizerFlagList(ctx.geo?.anonymizer)
  const internal = ctx.client?.internal === true
  const crossBorder = isCrossBorder(country, anonymizer.length > 0, servingRegion, { internal, internalCrossBorder: policy.locations.internalCrossBorder })
  if (!inScope(ctx, crossBorder)) return null
  const d = ctx.decision
  const limitRefused = ctx.limit !== null && !ctx.limit.allowed
  // No decision at all means the pipeline failed before the policy spoke: not a permitted interaction.
  const denied = d === null || (!d.allow && !d.shadow) || limitRefused
  const a = ctx.config.audit
  const entry: AuditEntry = {
    ts: new Date().toISOString(),
    requestId: request.id,
    keyId: ctx.principal.keyId,
    org: ctx.principal.org,
    ip: auditIp(ctx.clientIp, a.ip, a.ipHashSalt),
    country,
    location: internal ? 'internal' : country === null ? 'unknown' : 'geo',
    subdivision: ctx.geo?.subdivisions[0] ?? null,
    anonymizer,
    geodbBuild: ctx.geo?.build ?? null,
    model,
    classification: modelCfg?.classification ?? null,
    servingRegion,
    endpoint: ctx.shape.endpoint,
    crossBorder,
    decision: denied ? 'deny' : 'allow',
    rule: limitRefused ? (ctx.limit?.rule ?? 'limit') : (d?.rule ?? 'none'),
    status: null,
    tokensIn: null,
    tokensOut: null,
    latencyMs: null,
    locationTier: d?.locationTier ?? null,
    keyTier: d?.keyTier ?? ctx.principal.tier,
    degraded: ctx.limit?.degraded ?? false,
    shadow: d !== null && !d.allow && d.shadow,
    outcome: 'unknown',
    upstreamStatus: null,
    stream: ctx.shape.stream,
    tokensEstimated: false,
    // a City database's detail, and the precise place that decided, only when there is one
    ...(ctx.geo?.city === undefined ? {} : { city: ctx.geo.city.geonameId }),
    ...(ctx.geo?.postalCode === undefined ? {} : { postalCode: ctx.geo.postalCode }),
    ...(d?.locationSource !== undefined && /^(region|postal|city):/.test(d.locationSource) ? { locationSource: d.locationSource } : {}),
    policyVersion: ctx.policyVersion,
    capabilities: ctx.shape.capabilities,
    subdivisions: ctx.geo?.subdivisions ?? [],
    keyCountry: ctx.principal.country ?? null,
    verifiedEntity: ctx.principal.verifiedEntity,
    maxOutputTokens: ctx.shape.maxOutputTokens,
    n: ctx.shape.n ?? null,
    choices: ctx.shape.choices,
    promptTokens: ctx.shape.promptTokens,
    address: ctx.client === null || !ctx.client.located ? 'unlocated' : ctx.client.internal ? 'internal' : 'public'
  }
  return status === null ? entry : finishEntry(entry, ctx, status)
}

/** The end of an interaction on its entry: when, the status sent, tokens, latency, outcome. */
function finishEntry (entry: AuditEntry, ctx: RequestContext, status: number): AuditEntry {
  // An entry begun before the limits were checked (beginRecord) learns their verdict here.
  const limit = ctx.limit
  if (limit !== null) {
    entry.degraded = limit.degraded
    if (!limit.allowed) {
      entry.decision = 'deny'
      entry.rule = limit.rule ?? 'limit'
    }
  }
  if (ctx.auditRefused !== null) {
    // Permitted by the policy, refused by the gateway: its journal entry could not be made durable.
    entry.decision = 'deny'
    entry.rule = 'audit:unavailable'
  }
  entry.ts = new Date().toISOString()
  entry.status = status
  entry.tokensIn = ctx.usage?.tokensIn ?? null
  entry.tokensOut = ctx.usage?.tokensOut ?? null
  entry.latencyMs = Math.round(Number(process.hrtime.bigint() - ctx.startedAt) / 1e4) / 100
  entry.outcome = outcomeOf(ctx, entry.decision === 'deny', status)
  entry.upstreamStatus = ctx.upstreamStatus
  entry.tokensEstimated = (ctx.usage as { estimated?: boolean } | null)?.estimated === true
  return entry
}

/**
 * Write-ahead, begun: the request passed the policy and its backend is chosen. Its entry is built (once: the same
 * object becomes its final record) and its in-flight journal line queued; the write runs while the limits are
 * checked (one wait instead of two in a row), and forward() awaits it with awaitRecord before the backend is asked,
 * so a crash at any instant after the backend may have seen the request still leaves a record.
 *
 * A request its limits then refuse is not forwarded: its line is withdrawn (withdrawRecord: taken back, or ended by
 * an end line, so recovery never makes an `unknown` record of it) and its final record takes the limit's verdict
 * (finishEntry). The line holds what was known when it was written: a forwarded request's recovered record has
 * `degraded: false` even when its limits were decided without Redis.
 */
export function beginRecord (request: FastifyRequest, rt: Runtime): void {
  const ctx = request.ctx
  // the caller hung up before this point: its interaction has ended (recorded or not), nothing is forwarded
  if (ctx.audited) { ctx.journal = false; return }
  const entry = buildEntry(request, rt, null)
  if (entry === null) { ctx.journal = false; return }
  ctx.auditEntry = entry
  ctx.journal = { started: process.hrtime.bigint(), result: rt.audit.begin(entry) }
}

/** The limits refused a request whose journal line was begun: it will not be forwarded (see beginRecord). */
export function withdrawRecord (request: FastifyRequest, rt: Runtime): void {
  const ctx = request.ctx
  if (ctx.journal === null || ctx.journal === false) return
  ctx.journal = false
  rt.audit.withdraw(request.id)
}

/**
 * Resolves once the request's journal line is durable. When it cannot be made durable in time, the request is
 * refused with 503 audit_unavailable (audit.onFailure: refuse) or forwarded anyway, counted and logged (serve).
 */
export async function awaitRecord (request: FastifyRequest, rt: Runtime): Promise<void> {
  const ctx = request.ctx
  const journal = ctx.journal
  if (journal === null || journal === false) return
  const r = await journal.result
  rt.metrics.auditJournalWait.observe(Number(process.hrtime.bigint() - journal.started) / 1e9)
  if (r.durable) return
  if (ctx.config.audit.onFailure === 'serve') {
    rt.metrics.auditUnrecordedServed.inc()
    request.log.warn({ reason: r.reason }, 'forwarded without a durable audit journal entry (audit.onFailure: serve)')
    return
  }
  rt.audit.withdraw(request.id)
  ctx.auditRefused = r.reason
  ctx.outcome = 'refused'
  rt.metrics.auditUnavailable.inc()
  request.log.warn({ reason: r.reason }, 'refused: audit journal entry not durable')
  throw new AuditUnavailableError()
}

/** Finish the audit entry of an interaction and hand it to the log (exactly once per request). */
export function recordInteraction (request: FastifyRequest, reply: FastifyReply, rt: Runtime): void {
  const ctx = request.ctx
  if (ctx === null || ctx === undefined || ctx.audited) return
  ctx.audited = true
  const entry = ctx.auditEntry === null ? buildEntry(request, rt, reply.statusCode) : finishEntry(ctx.auditEntry, ctx, reply.statusCode)
  if (entry !== null) rt.audit.append(entry)
  else rt.audit.end(request.id)
}
