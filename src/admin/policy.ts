import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { AdminState } from './state.js'
import { screenForCreation } from './screening.js'
import { InvalidPolicyError, NotFoundError, BadRequestError } from '../core/errors.js'
import type { KeyInput } from '../policy/live.js'

import { Type, type Static } from '@sinclair/typebox'

// Route shapes, checked by Fastify before a handler runs; what a body means is checked by the configuration schema.
const NameParams = Type.Object({ name: Type.String({ minLength: 1 }) })
const IdParams = Type.Object({ id: Type.String({ minLength: 1 }) })
const ObjectBody = Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON object' })
type NameParams = Static<typeof NameParams>
type IdParams = Static<typeof IdParams>
type ObjectBody = Static<typeof ObjectBody>
const MERGE_PATCH = 'application/merge-patch+json'

/**
 * Live policy over the admin plane (README, "Admin API and CLI"):
 *   GET /admin/tiers · GET|PUT|PATCH|DELETE /admin/tiers/:name · GET|PUT|PATCH|DELETE /admin/locations
 *   POST|GET /admin/keys · GET|DELETE /admin/keys/:id · POST /admin/keys/:id/rotate · POST /admin/reload
 * PUT replaces (and refuses a tier body that leaves out a limit the tier has, unless it is sent as null); PATCH
 * merges (RFC 7396 JSON merge patch, application/json or application/merge-patch+json: null removes a field).
 * DELETE on a tier or the locations drops the live override (the file applies again). Reads need any admin
 * token, changes the admin role (enforced in index.ts). Every change is written to the audit log.
 */
export async function registerPolicyAdmin (admin: FastifyInstance, rt: Runtime, state: AdminState = { ready: true }): Promise<void> {
  const live = rt.live
  admin.addContentTypeParser(MERGE_PATCH, { parseAs: 'string' }, admin.getDefaultJsonParser('error', 'error'))

  /** who, what, before, after — into the audit chain, and a metric. */
  const record = (request: FastifyRequest, action: string, target: string, before: unknown, after: unknown): void => {
    rt.audit.appendAdminChange({
      ts: new Date().toISOString(),
      actor: request.admin?.name ?? 'unknown',
      role: request.admin?.role ?? 'unknown',
      action,
      target,
      before,
      after
    })
    rt.metrics.adminChanges.inc({ action })
    request.log.info({ action, target, actor: request.admin?.name }, 'policy changed')
  }

  admin.get('/admin/tiers', async () => {
    const c = rt.config
    return Object.fromEntries(Object.keys(c.tiers).map((n) => [n, { ...c.tiers[n], source: live.tierSource(n) }]))
  })

  admin.get<{ Params: NameParams }>('/admin/tiers/:name', { schema: { params: NameParams } }, async (request, reply) => {
    const tiers = rt.config.tiers
    // a name from the URL: never Object.prototype's toString or constructor
    const tier = Object.hasOwn(tiers, request.params.name) ? tiers[request.params.name] : undefined
    if (tier === undefined) throw new NotFoundError(`No tier named "${request.params.name}"`)
    reply.header('x-geogate-source', live.tierSource(request.params.name) ?? 'file')
    return tier
  })

  admin.put<{ Params: NameParams, Body: ObjectBody }>('/admin/tiers/:name', { schema: { params: NameParams, body: ObjectBody } }, async (request) => {
    const { name } = request.params
    const c = await live.putTier(name, request.body)
    record(request, 'tier.put', name, c.before, c.after)
    return c.after
  })

  admin.patch<{ Params: NameParams, Body: ObjectBody }>('/admin/tiers/:name', { schema: { params: NameParams, body: ObjectBody } }, async (request) => {
    const { name } = request.params
    const c = await live.patchTier(name, request.body)
    record(request, 'tier.patch', name, c.before, c.after)
    return c.after
  })

  admin.delete<{ Params: NameParams }>('/admin/tiers/:name', { schema: { params: NameParams } }, async (request) => {
    const { name } = request.params
    const c = await live.resetTier(name)
    record(request, 'tier.reset', name, c.before, c.after)
    return { name, tier: c.after, source: live.tierSource(name) }
  })

  admin.get('/admin/locations', async (_request, reply) => {
    reply.header('x-geogate-source', live.overrides().locations === null ? 'file' : 'override')
    return rt.config.locations
  })

  admin.put<{ Body: ObjectBody }>('/admin/locations', { schema: { body: ObjectBody } }, async (request) => {
    const c = await live.putLocations(request.body)
    record(request, 'locations.put', 'locations', c.before, c.after)
    return c.after
  })

  admin.patch<{ Body: ObjectBody }>('/admin/locations', { schema: { body: ObjectBody } }, async (request) => {
    const c = await live.patchLocations(request.body)
    record(request, 'locations.patch', 'locations', c.before, c.after)
    return c.after
  })

  admin.delete('/admin/locations', async (request) => {
    const c = await live.resetLocations()
    record(request, 'locations.reset', 'locations', c.before, c.after)
    return c.after
  })

  admin.get('/admin/keys', async () => ({ keys: live.listKeys() }))

  admin.get<{ Params: IdParams }>('/admin/keys/:id', async (request) => {
    const k = live.listKeys().find((x) => x.id === request.params.id)
    if (k === undefined) throw new NotFoundError(`No key with id "${request.params.id}"`)
    return k
  })

  // 201 {id, key}: the raw key is in this answer only; the gateway keeps its SHA-256.
  admin.post<{ Body: unknown }>('/admin/keys', async (request, reply) => {
    const body = bodyObject(request.body)
    const screening = screenForCreation(rt, request, body) // 403 party_restricted for a listed organisation
    const { raw, change } = await live.createKey(body as KeyInput, screening)
    const id = change.after?.id ?? ''
    record(request, 'key.create', id, null, change.after)
    reply.code(201)
    return { id, key: raw, ...change.after }
  })

  admin.post<{ Params: IdParams }>('/admin/keys/:id/rotate', async (request) => {
    const { raw, change } = await live.rotateKey(request.params.id)
    record(request, 'key.rotate', request.params.id, change.before, change.after)
    return { id: request.params.id, key: raw, ...change.after }
  })

  admin.delete<{ Params: IdParams }>('/admin/keys/:id', async (request) => {
    const change = await live.revokeKey(request.params.id)
    record(request, 'key.revoke', request.params.id, change.before, null)
    return { id: request.params.id, revoked: true }
  })

  // This replica first; a file it refuses is not sent on. Then every other replica sharing the store, by name.
  admin.post('/admin/reload', async (request) => {
    if (state.reload === undefined) throw new NotFoundError('This gateway was not started from a configuration file')
    const actor = { name: request.admin?.name ?? 'unknown', role: request.admin?.role ?? 'unknown' }
    const res = await state.reload(actor)
    if (!res.ok) throw Object.assign(new InvalidPolicyError(`Reload refused: ${res.issues.length} error(s); the running policy is kept`), { issues: res.issues })
    const policy = live.snapshot().hash
    const self = { replica: live.replica, ok: true, policy, changed: res.changed, restartNeeded: res.restartNeeded }
    if (!live.shared) {
      return { ...res, policy, scope: 'this-replica', message: 'Reloaded this replica only: there is no shared store (redis.url is not set), so no other replica can be reached', replicas: [self] }
    }
    const others = await live.reloadOthers(actor)
    const replicas = [self, ...others.acks.map(({ t: _t, id: _id, ...ack }) => ack)]
    const missing = others.reached - others.acks.length
    const hashes = new Set(replicas.map((r) => r.policy))
    return {
      ...res,
      policy,
      scope: 'all-replicas',
      message: `Reloaded ${replicas.filter((r) => r.ok).length} of ${others.reached + 1} replica(s) reached through the shared store` +
        (missing > 0 ? `; ${missing} did not answer in time` : '') +
        (hashes.size > 1 ? `; they decide with ${hashes.size} different policies (see replicas[].policy)` : ''),
      reached: others.reached + 1,
      replicas
    }
  })
}

function bodyObject (body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('Expected a JSON object body')
  return body as Record<string, unknown>
}
