import type { Logger } from 'pino'
import type { RedisClient } from './redis.js'

/**
 * Which backend created a stored object (a response, a fine-tuning job), so that requests naming only its id
 * (`GET /v1/responses/{id}`, `…/cancel`, `DELETE`) go back to it, and are decided on its model. Written when the
 * answer that created the object is forwarded; kept for a TTL (server.objectRoutesTtlSeconds). With Redis every
 * replica shares it; without, it lives in this process (bounded: the oldest entries are dropped first).
 */
export interface ObjectRoute {
  backend: string
  /** the model it was created with (the policy decides later requests on it) */
  model: string | null
}

export interface ObjectRoutes {
  /** fire and forget: a store that fails is logged, the answer is not held up */
  remember (kind: string, id: string, route: ObjectRoute): void
  /** null when unknown (never seen, or expired); throws when the store cannot be read */
  lookup (kind: string, id: string): Promise<ObjectRoute | null>
}

const MEMORY_ENTRIES = 100_000

function parseRoute (text: string | null): ObjectRoute | null {
  if (text === null) return null
  try {
    const v = JSON.parse(text) as { backend?: unknown, model?: unknown }
    if (typeof v.backend !== 'string') return null
    return { backend: v.backend, model: typeof v.model === 'string' ? v.model : null }
  } catch {
    return null
  }
}

export class MemoryObjectRoutes implements ObjectRoutes {
  readonly #ttlMs: number
  readonly #max: number
  readonly #routes = new Map<string, { route: ObjectRoute, until: number }>()

  constructor (ttlSeconds: number, maxEntries = MEMORY_ENTRIES) {
    this.#ttlMs = ttlSeconds * 1000
    this.#max = maxEntries
  }

  remember (kind: string, id: string, route: ObjectRoute): void {
    const key = `${kind}:${id}`
    this.#routes.delete(key)
    if (this.#routes.size >= this.#max) {
      const oldest = this.#routes.keys().next()
      if (oldest.done !== true) this.#routes.delete(oldest.value)
    }
    this.#routes.set(key, { route, until: Date.now() + this.#ttlMs })
  }

  async lookup (kind: string, id: string): Promise<ObjectRoute | null> {
    const key = `${kind}:${id}`
    const e = this.#routes.get(key)
    if (e === undefined) return null
    if (Date.now() >= e.until) { this.#routes.delete(key); return null }
    return e.route
  }
}

export class RedisObjectRoutes implements ObjectRoutes {
  readonly #redis: RedisClient
  readonly #prefix: string
  readonly #ttlMs: number
  readonly #log: Logger

  constructor (redis: RedisClient, prefix: string, ttlSeconds: number, log: Logger) {
    this.#redis = redis
    this.#prefix = prefix
    this.#ttlMs = ttlSeconds * 1000
    this.#log = log
  }

  #key (kind: string, id: string): string { return `${this.#prefix}obj:${kind}:${id}` }

  remember (kind: string, id: string, route: ObjectRoute): void {
    this.#redis.set(this.#key(kind, id), JSON.stringify(route), 'PX', this.#ttlMs).catch((err: unknown) => {
      this.#log.warn({ err: err instanceof Error ? err.message : String(err), kind, id }, 'could not remember which backend holds an object')
    })
  }

  async lookup (kind: string, id: string): Promise<ObjectRoute | null> {
    return parseRoute(await this.#redis.get(this.#key(kind, id)))
  }
}

export function createObjectRoutes (redis: RedisClient | null, prefix: string, ttlSeconds: number, log: Logger): ObjectRoutes {
  return redis === null ? new MemoryObjectRoutes(ttlSeconds) : new RedisObjectRoutes(redis, prefix, ttlSeconds, log)
}
