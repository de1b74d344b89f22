import type { FastifyInstance } from 'fastify'
import type { Runtime } from '../runtime.js'
import { explain, ExplainError } from '../policy/explain.js'
import { requireRole } from './auth.js'
import { snapshotFromConfig } from '../policy/snapshot.js'
import { PolicyRejected } from '../policy/live.js'
import { BadRequestError, NotFoundError } from '../core/errors.js'

interface ExplainQs { ip?: string, keyId?: string, model?: string, endpoint?: string, tools?: string, stream?: string, maxTokens?: string, at?: string }

function flag (v: string | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined
  if (v === 'true' || v === '1') return true
  if (v === 'false' || v === '0') return false
  throw new BadRequestError(`${name} must be true or false`)
}

/**
 * GET /admin/explain?ip=&keyId=&model=&endpoint=[&tools=&stream=&maxTokens=&at=] (roles: admin, auditor): the decision
 * the data plane would make, with its whole trace, against the live policy and the databases in service.
 */
export async function registerExplain (admin: FastifyInstance, rt: Runtime): Promise<void> {
  admin.get<{ Querystring: ExplainQs }>('/admin/explain', { preHandler: requireRole(() => rt.config.admin, 'admin', 'auditor') }, async (request) => {
    const q = request.query
    const missing = (['ip', 'keyId', 'model'] as const).filter((k) => q[k] === undefined || q[k] === '')
    if (missing.length > 0) throw new BadRequestError(`missing query parameter(s): ${missing.join(', ')}`)
    let maxTokens: number | undefined
    if (q.maxTokens !== undefined) {
      maxTokens = Number(q.maxTokens)
      if (!Number.isSafeInteger(maxTokens) || maxTokens < 0) throw new BadRequestError('maxTokens must be a non-negative integer')
    }
    let at: number | null = null
    if (q.at !== undefined && q.at !== '') {
      at = Date.parse(q.at)
      if (Number.isNaN(at)) throw new BadRequestError(`at: not a date and time: ${q.at}`)
    }
    try {
      // as of another instant: the schedule then, with today's live overrides
      const policy = at === null ? rt.policy.snapshot() : snapshotFromConfig(rt.live.configAt(at))
      return explain(policy, rt.geo, {
        ip: q.ip ?? '', keyId: q.keyId ?? '', model: q.model ?? '', endpoint: q.endpoint,
        tools: flag(q.tools, 'tools'), stream: flag(q.stream, 'stream'), maxTokens
      }, rt.config.backends, at === null ? null : new Date(at).toISOString())
    } catch (err) {
      if (err instanceof ExplainError) throw err.status === 404 ? new NotFoundError(err.message) : new BadRequestError(err.message)
      if (err instanceof PolicyRejected) throw new BadRequestError(err.message)
      throw err
    }
  })
}
