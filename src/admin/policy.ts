import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { AdminState } from './state.js'
import { screenForCreation } from './screening.js'
import { ConflictError, InvalidPolicyError, NotFoundError, UnavailableError, BadRequestError } from '../core/errors.js'
import { PolicyConflict, PolicyNotFound, PolicyRejected, PolicyStoreUnavailable, type KeyInput } from '../policy/live.js'

interface NameParams { name: string }
interface IdParams { id: string }

/**
 * Live policy over the admin plane (README, "Admin API and CLI"):
 *   GET /admin/tiers · GET|PUT|DELETE /admin/tiers/:name · GET|PUT|DELETE /admin/locations
 *   POST|GET /admin/keys · GET|DELETE /admin/keys/:id · POST /admin/keys/:id/rotate · POST /admin/reload
 * DELETE on a tier or the locations drops the live override (the file applies again). Reads need any admin
 * token, changes the admin role (enforced in index.ts). Every change is written to the audit log.
 */
export async function registerPolicyAdmin (admin: FastifyInstance, rt: Runtime, state: AdminState = { ready: true }): Promise<void> {
  const live = rt.live

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

  admin.get<{ Params: NameParams }>('/admin/tiers/:name', async (request, reply) => {
    const tiers = rt.config.tiers
    // a name from the URL: never Object.prototype's toString or constructor
    const tier = Object.hasOwn(tiers, request.params.name) ? tiers[request.params.name] : undefined
    if (tier === undefined) throw new NotFoundError(`No tier named "${request.params.name}"`)
    reply.header('x-geogate-source', live.tierSource(request.params.name) ?? 'file')
    return tier
  })

  admin.put<{ Params: NameParams, Body: unknown }>('/admin/tiers/:name', async (request) => {
    const { name } = request.params
    const c = await guard(async () => await live.putTier(name, bodyObject(request.body)))
    record(request, 'tier.put', name, c.before, c.after)
    return c.after
  })

  admin.delete<{ Params: NameParams }>('/admin/tiers/:name', async (request) => {
    const { name } = request.params
    const c = await guard(async () => await live.resetTier(name))
    record(request, 'tier.reset', name, c.before, c.after)
    return { name, tier: c.after, source: live.tierSource(name) }
  })

  admin.get('/admin/locations', async (_request, reply) => {
    reply.header('x-geogate-source', live.overrides().locations === null ? 'file' : 'override')
    return rt.config.locations
  })

  admin.put<{ Body: unknown }>('/admin/locations', async (request) => {
    const c = await guard(async () => await live.putLocations(bodyObject(request.body)))
    record(request, 'locations.put', 'locations', c.before, c.after)
    return c.after
  })

  admin.delete('/admin/locations', async (request) => {
    const c = await guard(async () => await live.resetLocations())
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
    const { raw, change } = await guard(async () => await live.createKey(body as KeyInput, screening))
    const id = change.after?.id ?? ''
    record(request, 'key.create', id, null, change.after)
    reply.code(201)
    return { id, key: raw, ...change.after }
  })

  admin.post<{ Params: IdParams }>('/admin/keys/:id/rotate', async (request) => {
    const { raw, change } = await guard(async () => await live.rotateKey(request.params.id))
    record(request, 'key.rotate', request.params.id, change.before, change.after)
    return { id: request.params.id, key: raw, ...change.after }
  })

  admin.delete<{ Params: IdParams }>('/admin/keys/:id', async (request) => {
    const change = await guard(async () => await live.revokeKey(request.params.id))
    record(request, 'key.revoke', request.params.id, change.before, null)
    return { id: request.params.id, revoked: true }
  })

  admin.post('/admin/reload', async (request) => {
    if (state.reload === undefined) throw new NotFoundError('This gateway was not started from a configuration file')
    const res = await state.reload({ name: request.admin?.name ?? 'unknown', role: request.admin?.role ?? 'unknown' })
    if (!res.ok) throw Object.assign(new InvalidPolicyError(`Reload refused: ${res.issues.length} error(s); the running policy is kept`), { issues: res.issues })
    return res
  })
}

function bodyObject (body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('Expected a JSON object body')
  return body as Record<string, unknown>
}

/** Policy errors -> coded HTTP errors (400 with every issue, 404, 409, 503 when the shared store is down). */
async function guard<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof PolicyRejected) throw Object.assign(new InvalidPolicyError(err.message), { issues: err.issues })
    if (err instanceof PolicyNotFound) throw new NotFoundError(err.message)
    if (err instanceof PolicyConflict) throw new ConflictError(err.message)
    if (err instanceof PolicyStoreUnavailable) throw new UnavailableError(err.message, { cause: err })
    throw err
  }
}
