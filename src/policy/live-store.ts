import type { Logger } from 'pino'
import type { KeyConfig, LocationsConfig, TierConfig } from '../config/schema/index.js'
import { isCluster, type RedisClient } from '../infra/redis.js'
import { isReservedName } from '../core/names.js'

/**
 * Live overrides of the file's policy, made through the admin API. What is not overridden comes from the
 * YAML file. A key set to null is revoked (a tombstone, so a revoked file key stays revoked).
 */
export interface Overrides {
  tiers: Record<string, TierConfig>
  locations: LocationsConfig | null
  keys: Record<string, KeyConfig | null>
}

export type OverrideChange =
  | { kind: 'tier', name: string, value: TierConfig | null }
  | { kind: 'locations', value: LocationsConfig | null }
  /** ifAbsent: refuse when another replica created this id first */
  | { kind: 'key', id: string, value: KeyConfig | null, ifAbsent?: boolean }

export interface StoredOverrides { version: number, overrides: Overrides }

/**
 * Messages between replicas on the policy channel (next to the bare version numbers of override changes):
 * "re-read your configuration file", and each replica's answer to it.
 */
export type ControlMessage =
  | { t: 'reload', id: string, from: string, actor: { name: string, role: string } }
  | { t: 'ack', id: string, replica: string, ok: boolean, policy: string, changed?: string[], restartNeeded?: string[], issues?: Array<{ path: string, message: string }> }

/** A control message from the channel, or null for anything else (a version number, a foreign message). */
export function parseControl (text: string): ControlMessage | null {
  if (!text.startsWith('{')) return null
  try {
    const m = JSON.parse(text) as Partial<ControlMessage>
    if ((m.t === 'reload' || m.t === 'ack') && typeof m.id === 'string') return m as ControlMessage
  } catch {}
  return null
}

/** Where the overrides live: this process (no Redis) or Redis, shared by every replica. */
export interface OverrideStore {
  readonly shared: boolean
  load (): Promise<StoredOverrides>
  /** cheap: the store's change counter, polled so that a missed pub/sub message heals */
  version (): Promise<number>
  /** applied false: ifAbsent and the id exists */
  apply (change: OverrideChange): Promise<{ applied: boolean, version: number }>
  /** called with the new version whenever any replica changes something, and with every control message */
  watch (onChange: (version: number) => void, onControl?: (m: ControlMessage) => void): void
  /** send a control message to every replica; resolves with how many subscribers got it (this one included; 0 unshared) */
  publish (m: ControlMessage): Promise<number>
  close (): Promise<void>
}

export function emptyOverrides (): Overrides {
  return { tiers: {}, locations: null, keys: {} }
}

function fieldOf (c: OverrideChange): string {
  if (c.kind === 'tier') return `tier:${c.name}`
  if (c.kind === 'locations') return 'locations'
  return `key:${c.id}`
}

function applyTo (o: Overrides, c: OverrideChange): void {
  if (isReservedName(c.kind === 'tier' ? c.name : c.kind === 'key' ? c.id : '')) return
  if (c.kind === 'tier') {
    if (c.value === null) Reflect.deleteProperty(o.tiers, c.name)
    else o.tiers[c.name] = c.value
  } else if (c.kind === 'locations') {
    o.locations = c.value
  } else {
    o.keys[c.id] = c.value
  }
}

/** One replica: overrides kept in memory, lost on restart (the README says so). */
export class MemoryOverrideStore implements OverrideStore {
  readonly shared = false
  #o = emptyOverrides()
  #version = 0
  async load (): Promise<StoredOverrides> { return { version: this.#version, overrides: structuredClone(this.#o) } }
  async version (): Promise<number> { return this.#version }
  async apply (c: OverrideChange): Promise<{ applied: boolean, version: number }> {
    if (c.kind === 'key' && c.ifAbsent === true && Object.hasOwn(this.#o.keys, c.id) && (this.#o.keys[c.id] ?? null) !== null) {
      return { applied: false, version: this.#version }
    }
    applyTo(this.#o, structuredClone(c))
    return { applied: true, version: ++this.#version }
  }
  watch (): void {}
  async publish (): Promise<number> { return 0 }
  async close (): Promise<void> {}
}

// Set (or delete, on an empty value) one field, bump the version and announce it, atomically.
// The hash and the counter share the {policy} hash tag so the script also runs on Redis Cluster.
const APPLY = `
if ARGV[3] == '1' then
  local cur = redis.call('HGET', KEYS[1], ARGV[1])
  if cur and cur ~= 'null' then return {0, tonumber(redis.call('GET', KEYS[2]) or '0')} end
end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[4], v)
return {1, v}
`

export interface RedisOverrideOptions { prefix: string, log: Logger, connectTimeoutMs: number }

/**
 * Admin writes and override reads get a connection of their own with a longer command timeout than the hot
 * path's: a write that times out on the client may still have been applied, and the admin would be told otherwise.
 */
const STORE_COMMAND_TIMEOUT_MS = 2000

/** Every replica reads and writes the same hash; a change is announced on a channel. */
export class RedisOverrideStore implements OverrideStore {
  readonly shared = true
  readonly #redis: RedisClient
  readonly #own: boolean
  readonly #connectTimeoutMs: number
  readonly #hash: string
  readonly #versionKey: string
  readonly #channel: string
  readonly #log: Logger
  #sub: RedisClient | null = null

  constructor (redis: RedisClient, opts: RedisOverrideOptions) {
    // A Cluster client keeps the shared connection (its per-node options are fixed at creation).
    this.#own = !(isCluster(redis))
    this.#redis = isCluster(redis) ? redis : redis.duplicate({ commandTimeout: STORE_COMMAND_TIMEOUT_MS })
    if (this.#own) this.#redis.on('error', () => {})
    this.#connectTimeoutMs = opts.connectTimeoutMs
    this.#hash = `${opts.prefix}{policy}:overrides`
    this.#versionKey = `${opts.prefix}{policy}:version`
    this.#channel = `${opts.prefix}policy:changed`
    this.#log = opts.log
  }

  /** Resolves once connected, or after the connect timeout (then the poll catches up later). */
  async ready (): Promise<void> {
    const redis = this.#redis
    if (redis.status === 'ready') return
    await new Promise<void>((resolve) => {
      const done = (): void => { clearTimeout(timer); redis.off('ready', done); resolve() }
      const timer = setTimeout(done, this.#connectTimeoutMs)
      redis.once('ready', done)
    })
  }

  async load (): Promise<StoredOverrides> {
    const res = await this.#redis.multi().get(this.#versionKey).hgetall(this.#hash).exec()
    if (res === null) throw new Error('policy overrides: transaction aborted')
    const [[vErr, v], [hErr, h]] = res as [[Error | null, string | null], [Error | null, Record<string, string>]]
    if (vErr !== null) throw vErr
    if (hErr !== null) throw hErr
    const o = emptyOverrides()
    for (const [field, text] of Object.entries(h)) {
      let value: unknown
      try { value = JSON.parse(text) } catch {
        this.#log.error({ field }, 'policy override is not JSON; ignored')
        continue
      }
      const name = field.slice(field.indexOf(':') + 1)
      // a name no replica can have written (the admin plane refuses them) is ignored, not laid over a prototype
      if (field !== 'locations' && isReservedName(name)) { this.#log.error({ field }, 'policy override with a reserved name; ignored'); continue }
      if (field.startsWith('tier:')) o.tiers[name] = value as TierConfig
      else if (field === 'locations') o.locations = value as LocationsConfig | null
      else if (field.startsWith('key:')) o.keys[name] = value as KeyConfig | null
    }
    return { version: Number(v ?? 0), overrides: o }
  }

  async version (): Promise<number> {
    return Number(await this.#redis.get(this.#versionKey) ?? 0)
  }

  async apply (c: OverrideChange): Promise<{ applied: boolean, version: number }> {
    const value = c.value === null && c.kind !== 'key' ? '' : JSON.stringify(c.value)
    const ifAbsent = c.kind === 'key' && c.ifAbsent === true ? '1' : '0'
    const res = await this.#redis.eval(APPLY, 2, this.#hash, this.#versionKey, fieldOf(c), value, ifAbsent, this.#channel) as [number, number]
    return { applied: res[0] === 1, version: Number(res[1]) }
  }

  async publish (m: ControlMessage): Promise<number> {
    return await this.#redis.publish(this.#channel, JSON.stringify(m))
  }

  watch (onChange: (version: number) => void, onControl?: (m: ControlMessage) => void): void {
    // The shared client has no offline queue (see infra/redis.ts); a subscriber may queue its SUBSCRIBE
    // until connected, and ioredis re-subscribes after a reconnect.
    const sub = duplicateForSubscribe(this.#redis)
    this.#sub = sub
    sub.on('error', () => {})
    sub.on('message', (_channel: string, message: string) => {
      const control = parseControl(message)
      if (control === null) onChange(Number(message))
      else onControl?.(control)
    })
    // After a reconnect messages may have been missed: re-check at once instead of waiting for the poll.
    sub.on('ready', () => { onChange(Number.NaN) })
    sub.subscribe(this.#channel).catch((err: unknown) => { this.#log.warn({ err }, 'policy subscription failed; polling only') })
  }

  async close (): Promise<void> {
    if (this.#sub !== null) this.#sub.disconnect()
    this.#sub = null
    if (this.#own) this.#redis.disconnect()
  }
}

function duplicateForSubscribe (redis: RedisClient): RedisClient {
  if (isCluster(redis)) return redis.duplicate(undefined, { enableOfflineQueue: true })
  return redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined })
}
