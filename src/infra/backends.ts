import { Pool } from 'undici'
import type { BackendConfig, ModelConfig } from '../config/schema/index.js'
import type { Cancel } from '../core/cancel.js'

export interface Backend {
  name: string
  region: string
  origin: string
  /** path prefix of the backend URL, e.g. '' or '/openai' */
  basePath: string
  apiKey: string | undefined
  pool: Pool
}

/** A forwarded request still talking to its backend; shutdown aborts what is left after the grace period. */
export interface InFlight {
  /** the request's own state: its outcome is set when shutdown cuts it short */
  ctx: { outcome: string }
  controller: Cancel
}

/**
 * One undici pool per backend, built at start and closed on shutdown, plus the set of forwarded requests in
 * flight, so SIGTERM can wait for them and then cancel the rest.
 */
export class BackendPools {
  readonly #backends = new Map<string, Backend>()
  readonly #inFlight = new Set<InFlight>()
  #drained: Array<() => void> = []

  constructor (backends: Readonly<Record<string, Readonly<BackendConfig>>>) {
    for (const [name, b] of Object.entries(backends)) {
      const u = new URL(b.url)
      // Forwarded paths already start with /v1, and OpenAI-style base URLs usually end with it (…:8000/v1).
      const basePath = u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')
      this.#backends.set(name, {
        name,
        region: b.region,
        origin: u.origin,
        basePath,
        apiKey: b.apiKey,
        pool: new Pool(u.origin, {
          connections: b.connections,
          connectTimeout: b.connectTimeoutMs,
          headersTimeout: b.headersTimeoutMs,
          bodyTimeout: b.bodyTimeoutMs
        })
      })
    }
  }

  /** A backend by name (the one that created a stored object, forward-routes.ts). */
  get (name: string): Backend | undefined { return this.#backends.get(name) }
  /** The only backend, when exactly one is configured: a request naming no model can only be meant for it. */
  only (): Backend | undefined { return this.#backends.size === 1 ? this.#backends.values().next().value : undefined }

  /**
   * The backend for a model: with several (`backends`), the one in the caller's country or subdivision,
   * so traffic stays in-country where it can; otherwise the first listed.
   */
  pick (model: Readonly<ModelConfig>, country: string | null, subdivisions: readonly string[]): Backend | undefined {
    const names = model.backends !== undefined && model.backends.length > 0 ? model.backends : [model.backend]
    if (names.length > 1 && country !== null) {
      for (const n of names) {
        const b = this.#backends.get(n)
        if (b !== undefined && (b.region === country || subdivisions.includes(b.region))) return b
      }
    }
    for (const n of names) {
      const b = this.#backends.get(n)
      if (b !== undefined) return b
    }
    return undefined
  }

  track (entry: InFlight): void { this.#inFlight.add(entry) }

  untrack (entry: InFlight): void {
    this.#inFlight.delete(entry)
    if (this.#inFlight.size === 0 && this.#drained.length > 0) {
      const waiters = this.#drained
      this.#drained = []
      for (const w of waiters) w()
    }
  }

  get inFlight (): number { return this.#inFlight.size }

  /** Resolves once no forwarded request is in flight. */
  async drained (): Promise<void> {
    if (this.#inFlight.size === 0) return
    await new Promise<void>((resolve) => { this.#drained.push(resolve) })
  }

  /** Cancel every forwarded request still in flight (SIGTERM after the grace period). */
  abortAll (outcome: 'shutdown'): number {
    let n = 0
    for (const f of this.#inFlight) {
      if (f.ctx.outcome === 'ok') f.ctx.outcome = outcome
      f.controller.abort(new Error(outcome))
      n++
    }
    return n
  }

  async close (): Promise<void> {
    await Promise.all([...this.#backends.values()].map(async (b) => { await b.pool.close() }))
  }
}
