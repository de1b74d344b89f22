import type { Runtime } from '../runtime.js'
import type { RequestContext } from './context.js'
import type { RequestShape } from '../core/types.js'
import type { ObjectRoute } from '../infra/object-routes.js'
import { ID_SEGMENT } from '../policy/endpoint.js'
import { NotFoundError, UnavailableError } from '../core/errors.js'

/*
 * Endpoints that name a stored object instead of a model (GET/DELETE /v1/responses/{id}, …/cancel, …/input_items,
 * /v1/fine_tuning/jobs[/{id}…]) go to the backend that created the object — remembered when the answer creating it
 * was forwarded — and are decided on the model it was created with. Unknown id: the single backend when there is
 * exactly one, else a 404 before the policy (nothing forwarded, no interaction recorded).
 */

const WHAT: ReadonlyMap<string, string> = new Map([['responses', 'response'], ['fine_tuning.jobs', 'fine-tuning job']])

/** Pin the backend (and the model) of a request that names an object; a no-op on every other endpoint. */
export async function routeByObject (rt: Runtime, shape: RequestShape, ctx: RequestContext): Promise<void> {
  if (shape.objectId === undefined) return
  const id = shape.objectId
  let route: ObjectRoute | null = null
  if (id !== null) {
    try {
      route = await rt.objects.lookup(shape.endpoint, id)
    } catch (err) {
      throw new UnavailableError('The gateway cannot tell which backend holds this object right now; retry', { cause: err })
    }
  }
  let backend = route === null ? undefined : rt.backends.get(route.backend)
  if (backend === undefined) {
    const only = rt.backends.only()
    if (only === undefined) {
      const what = WHAT.get(shape.endpoint) ?? 'object'
      throw new NotFoundError(id === null
        ? `This gateway serves several backends and cannot tell which one to ask for ${shape.forwardPath.split('?')[0] ?? ''}`
        : `No ${what} with id "${id}" was created through this gateway (or it has expired)`)
    }
    backend = only
    route = null
  }
  shape.model = route?.model ?? null
  ctx.route = backend.name
  ctx.backend = { name: backend.name, region: backend.region }
}

/** The id of an object an answer created (`{"id": "resp_…"}`), if it looks like one. */
export function createdId (body: unknown): string | null {
  if (body === null || typeof body !== 'object') return null
  const id = (body as { id?: unknown }).id
  return typeof id === 'string' && ID_SEGMENT.test(id) ? id : null
}

const HEAD_ID = /^\s*\{\s*"id"\s*:\s*"([A-Za-z0-9_-][A-Za-z0-9_.-]{0,255})"/

/**
 * The id at the head of a JSON answer (OpenAI and vLLM write `{"id": …` first): read from the first chunk, so the
 * route is stored before the caller has the whole answer and can ask for it. The parse at the end is the fallback.
 */
export function createdIdFromHead (chunk: Buffer): string | null {
  return HEAD_ID.exec(chunk.toString('utf8', 0, Math.min(chunk.length, 512)))?.[1] ?? null
}

/** The first event of a Responses stream, `response.created`, carries the response and its id. */
export function createdIdFromEvent (payload: string): string | null {
  if (!payload.includes('"response.created"')) return null
  try {
    const e = JSON.parse(payload) as { type?: unknown, response?: unknown }
    return e.type === 'response.created' ? createdId(e.response) : null
  } catch {
    return null
  }
}
