import { PassThrough } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { Runtime } from '../runtime.js'
import type { Config } from '../config/schema/index.js'
import { ConfigError, configFromText, parseConfig } from '../config/load.js'
import { isoBound, readRecords } from '../audit/read.js'
import { requireRole } from './auth.js'
import { BadRequestError, InvalidPolicyError, NotFoundError } from '../core/errors.js'
import { PolicyTestFileSchema, checkPolicyTests, runPolicyTests, PolicyTestFileError } from '../policy/policy-tests.js'
import { replayAudit, formatReplay, replayCsv, replayHtml } from '../policy/replay.js'
import { snapshotFromConfig } from '../policy/snapshot.js'
import { PolicyRejected } from '../policy/live.js'
import { POLICY_VERSION_ACTION } from '../policy/version.js'

export const PolicyTestBodySchema = PolicyTestFileSchema

export const PolicyReplayBodySchema = Type.Object({
  config: Type.Union([Type.String({ description: 'the candidate configuration as YAML (or JSON) text' }), Type.Object({}, { additionalProperties: true })]),
  from: Type.Optional(Type.String()),
  to: Type.Optional(Type.String()),
  format: Type.Optional(Type.Union([Type.Literal('ndjson'), Type.Literal('text'), Type.Literal('csv'), Type.Literal('html')]))
}, { additionalProperties: false })
export type PolicyReplayBody = Static<typeof PolicyReplayBodySchema>

/** The POST routes an auditor may call: they change nothing (admin/index.ts lets them through). */
export const READ_ONLY_POSTS: ReadonlySet<string> = new Set(['/admin/policy/test', '/admin/policy/replay'])

function schemaIssues (schema: Parameters<typeof Value.Errors>[0], body: unknown): string {
  return [...Value.Errors(schema, body)].slice(0, 20).map((e) => `${e.path || '/'}: ${e.message}`).join('; ')
}

function candidateOf (config: PolicyReplayBody['config']): Readonly<Config> {
  try {
    // env {}: a candidate's ${VAR} references are not resolved from the gateway's environment (its secrets)
    return typeof config === 'string' ? configFromText(config, 'candidate', {}) : parseConfig(config, 'candidate')
  } catch (err) {
    if (err instanceof ConfigError) throw Object.assign(new InvalidPolicyError(err.message), { issues: err.issues })
    throw err
  }
}

/**
 * Policy as code over the admin plane (roles admin and auditor):
 *   POST /admin/policy/test      expectations (the `geogate policy test` file, as JSON) against the live policy
 *   POST /admin/policy/replay    this gateway's audit log re-decided under a candidate; streams its report
 *   GET  /admin/policy/versions[?from=&to=]  the policy versions recorded in the audit chain (…/versions/:version: one, in full)
 */
export async function registerPolicyCode (admin: FastifyInstance, rt: Runtime): Promise<void> {
  const roles = { preHandler: requireRole(() => rt.config.admin, 'admin', 'auditor') }

  admin.post<{ Body: unknown }>('/admin/policy/test', roles, async (request) => {
    let file
    try {
      file = checkPolicyTests(request.body, 'body')
    } catch (err) {
      if (err instanceof PolicyTestFileError) throw new BadRequestError(err.message)
      throw err
    }
    const cases = file.tests.map((test, i) => ({ test, id: `#${i + 1}` }))
    try {
      // as of a case's `when`: the live policy's schedule then, with today's overrides
      const results = runPolicyTests(cases, rt.live.config(), rt.geo, Date.now(), (ms) => snapshotFromConfig(rt.live.configAt(ms)))
      const failed = results.filter((r) => !r.ok).length
      return { ok: failed === 0, passed: results.length - failed, failed, policyVersion: rt.policy.snapshot().hash, results }
    } catch (err) {
      if (err instanceof PolicyRejected) throw new BadRequestError(err.message)
      throw err
    }
  })

  admin.post<{ Body: unknown }>('/admin/policy/replay', roles, async (request, reply) => {
    const body = request.body
    if (!Value.Check(PolicyReplayBodySchema, body)) throw new BadRequestError(`body: ${schemaIssues(PolicyReplayBodySchema, body)}`)
    const candidate = candidateOf(body.config)
    let filter
    try {
      filter = { from: isoBound(body.from, 'from'), to: isoBound(body.to, 'to') }
    } catch (err) {
      throw new BadRequestError((err as Error).message)
    }
    const format = body.format ?? 'ndjson'
    await rt.audit.flush()
    const out = new PassThrough()
    const ndjson = format === 'ndjson'
    reply.type(ndjson ? 'application/x-ndjson' : format === 'csv' ? 'text/csv; charset=utf-8' : format === 'html' ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8')
    // NDJSON: progress lines while the log is read, then the report; the other formats come whole at the end.
    replayAudit(rt.audit.dir, candidate, {
      filter,
      onProgress: ndjson ? (n) => { out.write(JSON.stringify({ progress: { records: n } }) + '\n') } : undefined
    }).then((rep) => {
      out.end(ndjson ? JSON.stringify({ report: rep }) + '\n' : format === 'csv' ? replayCsv(rep) : format === 'html' ? replayHtml(rep) : formatReplay(rep))
    }, (err: unknown) => {
      request.log.error({ err }, 'policy replay failed')
      out.end(ndjson ? JSON.stringify({ error: { message: err instanceof Error ? err.message : String(err) } }) + '\n' : '')
    })
    return await reply.send(out)
  })

  const versions = async (q: { from?: string, to?: string }): Promise<Array<{ version: string, ts: string, writer: string, seq: number, cause: string | null, previous: string | null, policy: string }>> => {
    let filter
    try {
      filter = { from: isoBound(q.from, 'from'), to: isoBound(q.to, 'to') }
    } catch (err) {
      throw new BadRequestError((err as Error).message)
    }
    await rt.audit.flush()
    const out = []
    // ?from=&to= bound the segments read: the whole log is read otherwise
    for await (const { record: r } of readRecords(rt.audit.dir, { ...filter, kind: 'admin' })) {
      if (r.kind !== 'admin' || r.action !== POLICY_VERSION_ACTION) continue
      const after = (r.after ?? {}) as { cause?: string, policy?: string }
      const before = r.before as { policyVersion?: string } | null
      out.push({ version: r.target, ts: r.ts, writer: r.writer, seq: r.seq, cause: after.cause ?? null, previous: before?.policyVersion ?? null, policy: after.policy ?? '' })
    }
    return out
  }

  admin.get<{ Querystring: { from?: string, to?: string } }>('/admin/policy/versions', roles, async (request) => {
    const all = await versions(request.query)
    return { current: rt.policy.snapshot().hash, versions: all.map(({ policy: _text, ...v }) => v) }
  })

  admin.get<{ Params: { version: string }, Querystring: { from?: string, to?: string } }>('/admin/policy/versions/:version', roles, async (request) => {
    const found = (await versions(request.query)).filter((v) => v.version === request.params.version)
    const first = found[0]
    if (first === undefined) throw new NotFoundError(`no policy version "${request.params.version}" in the audit log`)
    return { ...first, policy: JSON.parse(first.policy) as unknown, recorded: found.map((v) => ({ ts: v.ts, writer: v.writer, seq: v.seq, cause: v.cause })) }
  })
}
