import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { AuditEntry, Outcome } from '../audit/types.js'
import type { RequestContext } from './context.js'
import { anonymizerFlagList } from '../core/anonymizers.js'
import { auditIp } from '../audit/ip.js'
import { isCrossBorder, servingRegionOf } from '../policy/cross-border.js'

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
  const crossBorder = isCrossBorder(country, anonymizer.length > 0, servingRegion)
  if (!inScope(ctx, crossBorder)) return null
  const d = ctx.decision
  const limitRefused = ctx.limit !== null && !ctx.limit.allowed
  // No decision at all means the pipeline failed before the policy spoke: not a permitted interaction.
  const denied = d === null || (!d.allow && !d.shadow) || limitRefused
  const a = ctx.config.audit
  return {
    ts: new Date().toISOString(),
    requestId: request.id,
    keyId: ctx.principal.keyId,
    org: ctx.principal.org,
    ip: auditIp(ctx.clientIp, a.ip, a.ipHashSalt),
    country,
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
    status,
    tokensIn: ctx.usage?.tokensIn ?? null,
    tokensOut: ctx.usage?.tokensOut ?? null,
    latencyMs: status === null ? null : Math.round(Number(process.hrtime.bigint() - ctx.startedAt) / 1e4) / 100,
    locationTier: d?.locationTier ?? null,
    keyTier: d?.keyTier ?? ctx.principal.tier,
    degraded: ctx.limit?.degraded ?? false,
    shadow: d !== null && !d.allow && d.shadow,
    outcome: status === null ? 'unknown' : outcomeOf(ctx, denied, status),
    upstreamStatus: ctx.upstreamStatus,
    stream: ctx.shape.stream,
    tokensEstimated: (ctx.usage as { estimated?: boolean } | null)?.estimated === true,
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
}

/**
 * The request passed policy and limits and is about to be forwarded: note it in the in-flight journal, so that a
 * crash before it finishes still leaves a record (outcome `unknown`) after the next start.
 */
export function recordStart (request: FastifyRequest, rt: Runtime): void {
  const entry = buildEntry(request, rt, null)
  if (entry !== null) rt.audit.begin(entry)
}

/** Build the audit entry for a finished interaction and hand it to the log (exactly once per request). */
export function recordInteraction (request: FastifyRequest, reply: FastifyReply, rt: Runtime): void {
  const ctx = request.ctx
  if (ctx === null || ctx === undefined || ctx.audited) return
  ctx.audited = true
  const entry = buildEntry(request, rt, reply.statusCode)
  if (entry !== null) rt.audit.append(entry)
  else rt.audit.end(request.id)
}
