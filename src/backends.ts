import { Pool } from 'undici'
import type { BackendConfig } from './config/schema/index.js'

export interface Backend {
  name: string
  region: string
  origin: string
  /** path prefix of the backend URL, e.g. '' or '/openai' */
  basePath: string
  apiKey: string | undefined
  pool: Pool
}

/** One undici pool per backend, built at start and closed on shutdown. */
export class BackendPools {
  readonly #backends = new Map<string, Backend>()

  constructor (backends: Readonly<Record<string, Readonly<BackendConfig>>>) {
    for (const [name, b] of Object.entries(backends)) {
      const u = new URL(b.url)
      this.#backends.set(name, {
        name,
        region: b.region,
        origin: u.origin,
        basePath: u.pathname.replace(/\/+$/, ''),
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

  get (name: string): Backend | undefined { return this.#backends.get(name) }
  all (): Backend[] { return [...this.#backends.values()] }

  async close (): Promise<void> {
    await Promise.all([...this.#backends.values()].map(async (b) => { await b.pool.close() }))
  }
}
