/*
 * Where the list in service lives. Import is atomic in both stores: the new list is written whole under a
 * new version, then one pointer is switched to it. A reader follows the pointer, so it sees the old list or
 * the new one, never half of either; a failed write leaves the pointer, and the old list, as they were.
 *
 *   Redis:  <prefix>{screening}:list:<v>   the entries (JSON)      ┐ written first
 *           <prefix>{screening}:current    meta of the list in service, with its version   ← switched last
 *           <prefix>screening:changed      pub/sub: every replica reloads
 *   no Redis: <dir>/list-<v>.json, then <dir>/current.json (written to a temporary file and renamed)
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { isCluster, redisReady, type RedisClient } from '../infra/redis.js'
import type { ScreeningEntry, ScreeningList, ScreeningListMeta } from './types.js'

export interface ScreeningStore {
  readonly shared: boolean
  /** meta of the list in service, or null when none was ever imported */
  current (): Promise<ScreeningListMeta | null>
  /** the list a meta points at */
  load (meta: ScreeningListMeta): Promise<ScreeningList>
  /** store a new list and switch to it; returns its meta with the version assigned */
  put (meta: Omit<ScreeningListMeta, 'version'>, entries: readonly ScreeningEntry[]): Promise<ScreeningListMeta>
  /** called when another replica switched the list */
  watch (onChange: () => void): void
  close (): Promise<void>
}

interface Pointer { meta: ScreeningListMeta, previous: number | null }

/** Switch the pointer and announce it, in one step; returns the pointer it replaced. */
const SWITCH = `
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return old
`

/** A 30k-entry list is tens of MB: its reads and writes get a timeout of their own, not the hot path's 100 ms. */
const LIST_COMMAND_TIMEOUT_MS = 30000
/** how long a read waits for the store's own connection to come up before it is tried anyway */
const CONNECT_WAIT_MS = 2000

export class RedisScreeningStore implements ScreeningStore {
  readonly shared = true
  readonly #redis: RedisClient
  readonly #own: boolean
  readonly #pointer: string
  readonly #seq: string
  readonly #channel: string
  readonly #prefix: string
  readonly #log: Logger
  #sub: RedisClient | null = null

  constructor (redis: RedisClient, opts: { prefix: string, log: Logger }) {
    this.#own = !(isCluster(redis))
    this.#redis = isCluster(redis) ? redis : redis.duplicate({ commandTimeout: LIST_COMMAND_TIMEOUT_MS })
    if (this.#own) this.#redis.on('error', () => {})
    this.#prefix = opts.prefix
    this.#pointer = `${opts.prefix}{screening}:current`
    this.#seq = `${opts.prefix}{screening}:seq`
    this.#channel = `${opts.prefix}screening:changed`
    this.#log = opts.log
  }

  #listKey (v: number): string { return `${this.#prefix}{screening}:list:${v}` }

  async current (): Promise<ScreeningListMeta | null> {
    // The duplicate connects on its own, after the gateway's client is ready; a command before it is (the first
    // read, at start) fails at once (no offline queue), and the replica would serve without its list until the
    // next poll. Waited for, a moment at most (Redis down: the read fails, the poll tries again).
    if (this.#own && this.#redis.status !== 'ready') await redisReady(this.#redis, CONNECT_WAIT_MS)
    const text = await this.#redis.get(this.#pointer)
    return text === null ? null : (JSON.parse(text) as Pointer).meta
  }

  async load (meta: ScreeningListMeta): Promise<ScreeningList> {
    const text = await this.#redis.get(this.#listKey(meta.version))
    if (text === null) throw new Error(`screening list version ${meta.version} is not in Redis`)
    return { meta, entries: JSON.parse(text) as ScreeningEntry[] }
  }

  async put (m: Omit<ScreeningListMeta, 'version'>, entries: readonly ScreeningEntry[]): Promise<ScreeningListMeta> {
    const version = await this.#redis.incr(this.#seq)
    const meta: ScreeningListMeta = { ...m, version }
    await this.#redis.set(this.#listKey(version), JSON.stringify(entries))
    const prev = await this.current()
    const old = await this.#redis.eval(SWITCH, 1, this.#pointer, JSON.stringify({ meta, previous: prev?.version ?? null } satisfies Pointer), this.#channel, String(version)) as string | null
    // keep the list just replaced (a replica may be reading it now); the one before it goes
    const before = old === null ? null : (JSON.parse(old) as Pointer).previous
    if (before !== null) await this.#redis.del(this.#listKey(before)).catch(() => 0)
    return meta
  }

  watch (onChange: () => void): void {
    const sub = isCluster(this.#redis)
      ? this.#redis.duplicate(undefined, { enableOfflineQueue: true })
      : this.#redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined })
    this.#sub = sub
    sub.on('error', () => {})
    sub.on('message', () => { onChange() })
    sub.on('ready', () => { onChange() })
    sub.subscribe(this.#channel).catch((err: unknown) => { this.#log.warn({ err }, 'screening subscription failed; polling only') })
  }

  async close (): Promise<void> {
    this.#sub?.disconnect()
    this.#sub = null
    if (this.#own) this.#redis.disconnect()
  }
}

/** One replica without Redis: the list is kept in files, so it survives a restart. */
export class FileScreeningStore implements ScreeningStore {
  readonly shared = false
  constructor (readonly dir: string) {}

  async current (): Promise<ScreeningListMeta | null> {
    try {
      return (JSON.parse(await readFile(join(this.dir, 'current.json'), 'utf8')) as Pointer).meta
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
  }

  async load (meta: ScreeningListMeta): Promise<ScreeningList> {
    return { meta, entries: JSON.parse(await readFile(join(this.dir, `list-${meta.version}.json`), 'utf8')) as ScreeningEntry[] }
  }

  async put (m: Omit<ScreeningListMeta, 'version'>, entries: readonly ScreeningEntry[]): Promise<ScreeningListMeta> {
    await mkdir(this.dir, { recursive: true })
    const prev = await this.current()
    const meta: ScreeningListMeta = { ...m, version: (prev?.version ?? 0) + 1 }
    await atomicWrite(join(this.dir, `list-${meta.version}.json`), JSON.stringify(entries))
    await atomicWrite(join(this.dir, 'current.json'), JSON.stringify({ meta, previous: prev?.version ?? null } satisfies Pointer))
    // keep the current list and the one it replaced
    for (const f of await readdir(this.dir)) {
      const v = /^list-(\d+)\.json$/.exec(f)?.[1]
      if (v !== undefined && Number(v) !== meta.version && Number(v) !== prev?.version) await rm(join(this.dir, f), { force: true })
    }
    return meta
  }

  watch (): void {}
  async close (): Promise<void> {}
}

async function atomicWrite (path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, data, { flush: true })
  await rename(tmp, path)
}
