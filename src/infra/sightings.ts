import { randomBytes } from 'node:crypto'
import type { RedisClient } from './redis.js'

/**
 * "First time this key is seen from this country", counted once per key and country: per replica in memory,
 * and across replicas through one Redis hash per key when Redis is attached.
 */
export class CountrySightings {
  /** per replica: which (key, country) pairs were already counted as seen */
  readonly #seen = new Map<string, Set<string>>()
  /** first-sighting writes that failed, with the token they wrote (if they landed after all) */
  readonly #pending = new Map<string, string>()

  constructor (
    private readonly store: () => { redis: RedisClient, prefix: string } | undefined,
    private readonly onNew: (keyId: string) => void,
    private readonly onError: () => void
  ) {}

  see (keyId: string, country: string, declared: string | undefined): void {
    let seen = this.#seen.get(keyId)
    if (seen === undefined) {
      seen = new Set()
      this.#seen.set(keyId, seen)
    }
    if (seen.has(country)) return
    seen.add(country)
    // The key's declared country is expected; only other countries are news.
    const store = this.store()
    if (store === undefined) {
      if (country !== declared) this.onNew(keyId)
      return
    }
    // HSETNX with a token of this replica's attempt: a write that timed out on the client may still have landed,
    // and the retry must then recognise it as its own first sighting rather than someone else's.
    const hash = `${store.prefix}seen-countries:${keyId}`
    const pendingKey = `${keyId}\u0000${country}`
    const earlier = this.#pending.get(pendingKey)
    const token = earlier ?? randomBytes(8).toString('hex')
    const mine = async (): Promise<boolean> => {
      if (await store.redis.hsetnx(hash, country, token) === 1) return true
      return earlier !== undefined && await store.redis.hget(hash, country) === token
    }
    mine().then((first) => {
      this.#pending.delete(pendingKey)
      if (first && country !== declared) this.onNew(keyId)
    }, () => {
      this.#pending.set(pendingKey, token)
      seen.delete(country)
      this.onError()
    })
  }
}
