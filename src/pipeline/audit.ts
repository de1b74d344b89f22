import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { AuditEntry } from '../audit/types.js'

/**
 * Build the audit entry for a finished interaction and hand it to the log (once per request).
 * TODO(issue 5): scope, IP modes, every ending (abort, shutdown, backend error).
 */
export function recordInteraction (request: FastifyRequest, reply: FastifyReply, rt: Runtime): void {
  const ctx = request.ctx
  if (ctx === undefined || ctx.audited || ctx.shape === null) return
  ctx.audited = true
  const policy = rt.policy.snapshot()
  const model = ctx.shape.model
  const modelCfg = model === null ? undefined : policy.models[model]
  const servingRegion = ctx.backend?.region ?? (modelCfg === undefined ? null : rt.config.backends[modelCfg.backend]?.region ?? null)
  const country = ctx.geo?.country ?? null
  const entry: AuditEntry = {
    ts: new Date().toISOString(),
    requestId: request.id,
    keyId: ctx.principal?.keyId ?? null,
    org: ctx.principal?.org ?? null,
    ip: ctx.clientIp,
    country,
    subdivision: ctx.geo?.subdivisions.at(-1) ?? null,
    anonymizer: [],
    geodbBuild: ctx.geo?.build ?? null,
    model,
    classification: modelCfg?.classification ?? null,
    servingRegion,
    endpoint: ctx.shape.endpoint,
    crossBorder: country === null || country !== servingRegion,
    decision: ctx.decision?.allow === false && !ctx.decision.shadow ? 'deny' : 'allow',
    rule: ctx.decision?.rule ?? 'none',
    status: reply.statusCode,
    tokensIn: ctx.usage?.tokensIn ?? null,
    tokensOut: ctx.usage?.tokensOut ?? null,
    latencyMs: Number(process.hrtime.bigint() - ctx.startedAt) / 1e6,
    // a limit decision made without Redis (failMode open fallback, or the closed 503)
    ...(ctx.limit?.degraded === true ? { degraded: true } : {})
  }
  rt.audit.append(entry)
}
