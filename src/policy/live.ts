import { randomBytes } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import type { Logger } from 'pino'
import type { Config, KeyConfig, KeyStatus, LocationsConfig, TierConfig } from '../config/schema/index.js'
import { ConfigError, parseConfig, type ConfigIssue } from '../config/load.js'
import type { RedisClient } from '../infra/redis.js'
import { sha256hex } from '../core/hash.js'
import { nameProblem } from '../core/names.js'
import { snapshotFromConfig, type PolicySnapshot, type PolicySource } from './snapshot.js'
import { applySchedule, upcomingSwitches } from '../config/schedule.js'
import { MemoryOverrideStore, RedisOverrideStore, emptyOverrides, type OverrideChange, type OverrideStore, type Overrides } from './live-store.js'

/** A change or reload that fails the same checks as the configuration file; nothing was applied. */
export class PolicyRejected extends Error {
  readonly issues: ConfigIssue[]
  constructor (what: string, issues: ConfigIssue[]) {
    super(`${what} refused: ${issues.length} error(s): ` + issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; '))
    this.name = 'PolicyRejected'
    this.issues = issues
  }
}

export class PolicyNotFound extends Error {}
export class PolicyStoreUnavailable extends Error {}
export class PolicyConflict extends Error {}

/** Sections read once at start (listeners, connections, pools, files): a reload keeps the running ones. */
export const RESTART_ONLY = ['server', 'redis', 'backends', 'geo', 'audit', 'limiter'] as const

export interface KeyInput { org?: unknown, tier?: unknown, country?: unknown, verifiedEntity?: unknown, id?: unknown, domain?: unknown }
export interface KeyView {
  id: string, org: string, tier: string, country: string | null, verifiedEntity: boolean, source: 'file' | 'admin', fingerprint: string
  /** screening: active, review (an admin must clear it) or suspended; with why */
  status: KeyStatus
  domain?: string
  screening?: KeyConfig['screening']
}
export interface Change<T> { before: T | null, after: T | null }
export interface ReloadOutcome { restartNeeded: string[], changed: string[] }

const RETRIES = 5
const RETRY_MS = 150
const KEY_FIELDS = new Set(['org', 'tier', 'country', 'verifiedEntity', 'id', 'domain'])

/** First 8 hex digits of the key's hash: enough to tell two keys apart in lists and the audit log, useless to an attacker. */
export function fingerprint (k: Readonly<KeyConfig>): string { return k.sha256.slice(0, 8) }

export function keyView (k: Readonly<KeyConfig>, source: 'file' | 'admin'): KeyView {
  const v: KeyView = { id: k.id, org: k.org, tier: k.tier, country: k.country ?? null, verifiedEntity: k.verifiedEntity, source, fingerprint: fingerprint(k), status: k.status ?? 'active' }
  if (k.domain !== undefined) v.domain = k.domain
  if (k.screening !== undefined) v.screening = k.screening
  return v
}

/** The file's configuration with the overrides laid over it, as a plain object for parseConfig. */
function compose (file: Readonly<Config>, o: Overrides): Record<string, unknown> {
  const keys: KeyConfig[] = []
  for (const k of file.keys) {
    const over = Object.hasOwn(o.keys, k.id) ? o.keys[k.id] : undefined
    if (over === undefined) keys.push(k)
    else if (over !== null) keys.push(over)
  }
  const seed = new Set(file.keys.map((k) => k.id))
  for (const [id, k] of Object.entries(o.keys)) if (!seed.has(id) && k !== null) keys.push(k)
  return { ...file, tiers: { ...file.tiers, ...o.tiers }, locations: o.locations ?? file.locations, keys }
}

function validate (what: string, file: Readonly<Config>, o: Overrides, atMs: number): Readonly<Config> {
  try {
    return parseConfig(compose(applySchedule(file, atMs), o), what)
  } catch (err) {
    if (err instanceof ConfigError) throw new PolicyRejected(what, err.issues)
    throw err
  }
}

/** One stretch of time with one effective policy: from `from` (epoch ms) until the next stage. */
interface Stage { from: number, config: Readonly<Config> }

/**
 * The policy now and at every scheduled switch still to come, each validated in full: a change (or reload) that
 * would make a future stage invalid is refused today, not discovered on the day.
 */
function stages (what: string, file: Readonly<Config>, o: Overrides, nowMs: number): Stage[] {
  const out: Stage[] = [{ from: nowMs, config: validate(what, file, o, nowMs) }]
  for (const t of upcomingSwitches(file, nowMs)) {
    out.push({ from: t, config: validate(`${what} (as of ${new Date(t).toISOString()})`, file, o, t) })
  }
  return out
}

/** Why the effective policy changed: the `cause` of a `policy.version` audit record. */
export type PolicyChangeCause = 'reload' | 'override' | 'sync' | 'schedule'

export interface PolicyChange {
  snapshot: PolicySnapshot
  config: Readonly<Config>
  /** hash of the policy it replaces */
  previous: string
  cause: PolicyChangeCause
}

export interface LivePolicyOptions {
  /** how often the store's version is re-checked, so a missed pub/sub message heals (ms) */
  pollMs?: number
  /** epoch ms; injected by tests to move time past a scheduled switch without waiting for it */
  clock?: () => number
}

/** setTimeout's longest delay; a switch further away is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * The policy in force: the YAML file as the seed, with live overrides (tiers, locations, keys) from the admin
 * API laid over it. With Redis the overrides are shared: a change is published and every replica reloads it;
 * a version counter polled every few seconds catches what pub/sub missed. Every change and every reload
 * is validated as a whole configuration first; a refused one leaves the running policy untouched.
 */
export class LivePolicy implements PolicySource {
  readonly #store: OverrideStore
  readonly #log: Logger
  readonly #pollMs: number
  readonly #clock: () => number
  #file: Readonly<Config>
  #overrides: Overrides = emptyOverrides()
  #config: Readonly<Config>
  #snap: PolicySnapshot
  /** the scheduled stages still to come, earliest first */
  #upcoming: Stage[] = []
  #nextAt = Infinity
  #switchTimer: NodeJS.Timeout | null = null
  readonly #listeners: Array<(c: PolicyChange) => void> = []
  #storeVersion = -1
  #timer: NodeJS.Timeout | null = null
  #queue: Promise<unknown> = Promise.resolve()
  #refreshing: Promise<void> | null = null
  #refreshAgain = false
  #closed = false
  #syncErrors = 0

  constructor (file: Readonly<Config>, store: OverrideStore, log: Logger, opts: LivePolicyOptions = {}) {
    this.#file = file
    this.#store = store
    this.#log = log
    this.#pollMs = opts.pollMs ?? 2000
    this.#clock = opts.clock ?? Date.now
    // The file was validated with its schedule, so its stages are valid too.
    const [now, ...upcoming] = stages('file', file, this.#overrides, this.#clock())
    this.#config = now?.config ?? file
    this.#snap = snapshotFromConfig(this.#config)
    this.#setUpcoming(upcoming)
  }

  static async open (file: Readonly<Config>, redis: RedisClient | null, log: Logger, opts: LivePolicyOptions = {}): Promise<LivePolicy> {
    let store: OverrideStore = new MemoryOverrideStore()
    if (redis !== null) {
      const shared = new RedisOverrideStore(redis, { prefix: file.redis.keyPrefix, log, connectTimeoutMs: file.redis.connectTimeoutMs })
      // Serve no request on the file alone while the shared overrides (say, a revoked key) are one connect away.
      await shared.ready()
      store = shared
    }
    const live = new LivePolicy(file, store, log, opts)
    await live.start()
    return live
  }

  /** Load the shared overrides, then follow changes. Redis being down at start is not fatal: the poll heals it. */
  async start (): Promise<void> {
    if (!this.#store.shared) return
    await this.refresh()
    this.#store.watch((v) => {
      if (!(v <= this.#storeVersion)) this.#scheduleRefresh()
    })
    this.#timer = setInterval(() => { this.#poll() }, this.#pollMs)
    this.#timer.unref()
  }

  /**
   * The policy in force. Past a scheduled instant the next stage is switched in here, on read, whether or not the
   * timer has fired yet: a late timer never serves the old policy past its instant.
   */
  snapshot (): PolicySnapshot {
    if (this.#clock() >= this.#nextAt) this.#switchStage()
    return this.#snap
  }

  /** The effective configuration: the file, its schedule as of now, with the overrides applied. */
  config (): Readonly<Config> {
    if (this.#clock() >= this.#nextAt) this.#switchStage()
    return this.#config
  }

  /** The effective configuration as of another instant (explain --at): the schedule then, today's overrides. */
  configAt (atMs: number): Readonly<Config> {
    return validate(`policy as of ${new Date(atMs).toISOString()}`, this.#file, this.#overrides, atMs)
  }

  /** Called on every change of the effective policy (its hash), whatever caused it. */
  onChange (fn: (c: PolicyChange) => void): void { this.#listeners.push(fn) }
  /** The instant of the next scheduled switch (epoch ms), or null. */
  get nextSwitch (): number | null { return Number.isFinite(this.#nextAt) ? this.#nextAt : null }
  fileConfig (): Readonly<Config> { return this.#file }
  overrides (): Readonly<Overrides> { return this.#overrides }
  get shared (): boolean { return this.#store.shared }
  get storeVersion (): number { return this.#storeVersion }
  get syncErrors (): number { return this.#syncErrors }

  tierSource (name: string): 'override' | 'file' | null {
    if (Object.hasOwn(this.#overrides.tiers, name)) return 'override'
    return Object.hasOwn(this.#file.tiers, name) ? 'file' : null
  }

  listKeys (): KeyView[] {
    const seed = new Set(this.#file.keys.map((k) => k.id))
    return this.#config.keys.map((k) => keyView(k, seed.has(k.id) && this.#overrides.keys[k.id] === undefined ? 'file' : 'admin'))
  }

  async putTier (name: string, body: unknown): Promise<Change<TierConfig>> {
    const bad = nameProblem(name)
    if (bad !== null) throw new PolicyRejected('tier change', [{ path: '/tiers', message: `tier name ${bad}` }])
    return await this.#change(`tier ${name}`, (o) => { o.tiers[name] = body as TierConfig }, (c) => ownTier(c, name),
      (c) => { const v = ownTier(c, name); return v === null ? null : { kind: 'tier', name, value: v } })
  }

  /** Drop a tier's override: the file's definition applies again (or the tier is gone if only the override had it). */
  async resetTier (name: string): Promise<Change<TierConfig>> {
    if (!Object.hasOwn(this.#overrides.tiers, name)) throw new PolicyNotFound(`tier "${name}" has no live override`)
    return await this.#change(`tier ${name}`, (o) => { Reflect.deleteProperty(o.tiers, name) }, (c) => ownTier(c, name),
      () => ({ kind: 'tier', name, value: null }))
  }

  async putLocations (body: unknown): Promise<Change<LocationsConfig>> {
    return await this.#change('locations change', (o) => { o.locations = body as LocationsConfig }, (c) => c.locations,
      (c) => ({ kind: 'locations', value: c.locations }))
  }

  async resetLocations (): Promise<Change<LocationsConfig>> {
    if (this.#overrides.locations === null) throw new PolicyNotFound('locations have no live override')
    return await this.#change('locations change', (o) => { o.locations = null }, (c) => c.locations, () => ({ kind: 'locations', value: null }))
  }

  /** Create a key; the raw key is returned once and only its SHA-256 is kept. */
  async createKey (input: KeyInput, screening: Pick<KeyConfig, 'status' | 'screening'> = {}): Promise<{ raw: string, change: Change<KeyView> }> {
    const issues: ConfigIssue[] = Object.keys(input).filter((f) => !KEY_FIELDS.has(f)).map((f) => ({ path: `/${f}`, message: `unknown property "${f}"` }))
    if (input.id !== undefined) {
      const bad = typeof input.id === 'string' ? nameProblem(input.id) : 'must be a string'
      if (bad !== null) issues.push({ path: '/id', message: bad })
    }
    if (issues.length > 0) throw new PolicyRejected('key creation', issues)
    const id = typeof input.id === 'string' ? input.id : `key-${randomBytes(6).toString('hex')}`
    if (this.#config.keys.some((k) => k.id === id)) throw new PolicyConflict(`a key with id "${id}" already exists`)
    const raw = newRawKey()
    const candidate: Record<string, unknown> = { id, sha256: sha256hex(raw), org: input.org, tier: input.tier }
    if (input.country !== undefined) candidate.country = input.country
    if (input.verifiedEntity !== undefined) candidate.verifiedEntity = input.verifiedEntity
    if (input.domain !== undefined) candidate.domain = input.domain
    if (screening.status !== undefined) candidate.status = screening.status
    if (screening.screening !== undefined) candidate.screening = screening.screening
    const change = await this.#change(`key ${id}`, (o) => { o.keys[id] = candidate as KeyConfig }, (c) => this.#keyIn(c, id),
      (c) => ({ kind: 'key', id, value: c.keys.find((k) => k.id === id) ?? null, ifAbsent: true }))
    return { raw, change: viewChange(change) }
  }

  /** A new raw key for the same id; the old one stops working at once. */
  async rotateKey (id: string): Promise<{ raw: string, change: Change<KeyView> }> {
    const current = this.#keyIn(this.#config, id)
    if (current === null) throw new PolicyNotFound(`no key with id "${id}"`)
    const raw = newRawKey()
    const next: KeyConfig = { ...current, sha256: sha256hex(raw) }
    const change = await this.#change(`key ${id}`, (o) => { o.keys[id] = next }, (c) => this.#keyIn(c, id), () => ({ kind: 'key', id, value: next }))
    return { raw, change: viewChange(change) }
  }

  /**
   * Put a key in review, suspend it or clear it (screening, a declared-country mismatch, an admin's clearance):
   * stored like any key change, so every replica applies it within a second. `expect` (optional): change only
   * from this status, so two replicas racing to suspend one key write it once.
   */
  async setKeyStatus (id: string, status: KeyStatus, screening: NonNullable<KeyConfig['screening']>, expect?: readonly KeyStatus[]): Promise<Change<KeyView> | null> {
    const current = this.#keyIn(this.#config, id)
    if (current === null) throw new PolicyNotFound(`no key with id "${id}"`)
    if (expect !== undefined && !expect.includes(current.status ?? 'active')) return null
    const next: KeyConfig = { ...current, status, screening }
    if (status === 'active') Reflect.deleteProperty(next, 'status')
    return viewChange(await this.#change(`key ${id}`, (o) => { o.keys[id] = next }, (c) => this.#keyIn(c, id), () => ({ kind: 'key', id, value: next })))
  }

  async revokeKey (id: string): Promise<Change<KeyView>> {
    if (this.#keyIn(this.#config, id) === null) throw new PolicyNotFound(`no key with id "${id}"`)
    return viewChange(await this.#change(`key ${id}`, (o) => { o.keys[id] = null }, (c) => this.#keyIn(c, id), () => ({ kind: 'key', id, value: null })))
  }

  /**
   * SIGHUP: a new file under the same overrides. Sections that need a restart keep their running values (and are
   * named in the outcome); everything else — tiers, locations, keys, models, quotas, policy mode, admin tokens,
   * log level — is swapped. Refused as a whole with every error when the result does not validate.
   */
  async reload (next: Readonly<Config>): Promise<ReloadOutcome> {
    return await this.#serial(async () => {
      const restartNeeded = RESTART_ONLY.filter((s) => !isDeepStrictEqual(next[s], this.#file[s]))
      const pinned = { ...next }
      for (const s of RESTART_ONLY) Object.assign(pinned, { [s]: this.#file[s] })
      let file: Readonly<Config>
      try {
        file = parseConfig(pinned, 'reload')
      } catch (err) {
        if (err instanceof ConfigError) throw new PolicyRejected('reload', err.issues)
        throw err
      }
      const staged = stages('reload', file, this.#overrides, this.#clock())
      const effective = (staged[0] as Stage).config
      const changed = (Object.keys(effective) as Array<keyof Config>).filter((s) => !isDeepStrictEqual(effective[s], this.#config[s]))
      this.#file = file
      this.#install(staged, 'reload')
      return { restartNeeded: [...restartNeeded], changed }
    })
  }

  /** Re-read every override from the store (after a pub/sub message, a version change, or a reconnect). */
  /** false when the store could not be read (the running policy is kept). */
  async refresh (): Promise<boolean> {
    if (!this.#store.shared) return true
    return await this.#serial(async () => {
      let stored
      try {
        stored = await this.#store.load()
      } catch (err) {
        this.#syncErrors++
        this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'policy overrides could not be loaded; keeping the running policy')
        return false
      }
      if (stored.version === this.#storeVersion) return true
      this.#adopt(stored.overrides)
      this.#storeVersion = stored.version
      return true
    })
  }

  async close (): Promise<void> {
    this.#closed = true
    if (this.#timer !== null) clearInterval(this.#timer)
    if (this.#switchTimer !== null) clearTimeout(this.#switchTimer)
    await this.#queue.catch(() => {})
    await this.#store.close()
  }

  #keyIn (c: Readonly<Config>, id: string): KeyConfig | null {
    return c.keys.find((k) => k.id === id) ?? null
  }

  /** Validate the change locally, write it to the store, and apply it here at once. */
  async #change<T> (what: string, mutate: (o: Overrides) => void, pick: (c: Readonly<Config>) => T | null,
    toStore: (effective: Readonly<Config>) => OverrideChange | null): Promise<Change<T>> {
    return await this.#serial(async () => {
      const trial = structuredClone(this.#overrides)
      mutate(trial)
      const next = stages(what, this.#file, trial, this.#clock())
      const effective = (next[0] as Stage).config
      const before = pick(this.#config)
      const change = toStore(effective)
      if (change === null) throw new PolicyRejected(what, [{ path: '/', message: 'nothing to store' }])
      // Store the normalised value (schema defaults applied), so every replica reads exactly what was validated.
      if (change.kind === 'tier' && change.value !== null) trial.tiers[change.name] = change.value
      if (change.kind === 'locations' && change.value !== null) trial.locations = change.value
      let res
      try {
        res = await this.#store.apply(change)
      } catch (err) {
        throw new PolicyStoreUnavailable(`The shared policy store is unavailable; nothing was changed (${err instanceof Error ? err.message : String(err)})`, { cause: err })
      }
      if (!res.applied) throw new PolicyConflict(`${what} was created concurrently on another replica`)
      const exact = res.version === this.#storeVersion + 1 || !this.#store.shared
      this.#overrides = trial
      this.#install(next, 'override')
      this.#storeVersion = res.version
      // Another replica changed something in between: read the whole set so nothing is lost.
      if (!exact) this.#scheduleRefresh(true)
      return { before, after: pick(effective) }
    })
  }

  /** Overrides from the store, validated; an override that no longer fits the file is skipped (and logged). */
  #adopt (o: Overrides): void {
    try {
      const next = stages('stored overrides', this.#file, o, this.#clock())
      this.#overrides = o
      this.#install(next, 'sync')
      return
    } catch (err) {
      if (!(err instanceof PolicyRejected)) throw err
      this.#log.error({ issues: err.issues }, 'stored policy overrides do not validate against this configuration file; applying the ones that do')
    }
    const kept = emptyOverrides()
    const steps: Array<[string, (x: Overrides) => void]> = [
      ...Object.entries(o.tiers).map(([n, t]): [string, (x: Overrides) => void] => [`tier:${n}`, (x) => { x.tiers[n] = t }]),
      ...(o.locations === null ? [] : [['locations', (x: Overrides) => { x.locations = o.locations }] as [string, (x: Overrides) => void]]),
      ...Object.entries(o.keys).map(([id, k]): [string, (x: Overrides) => void] => [`key:${id}`, (x) => { x.keys[id] = k }])
    ]
    let effective = stages('file', this.#file, kept, this.#clock())
    for (const [field, step] of steps) {
      const trial = structuredClone(kept)
      step(trial)
      try {
        effective = stages('stored override', this.#file, trial, this.#clock())
        step(kept)
      } catch (err) {
        if (!(err instanceof PolicyRejected)) throw err
        this.#log.error({ field, issues: err.issues }, 'policy override skipped')
      }
    }
    this.#overrides = kept
    this.#install(effective, 'sync')
  }

  #install (next: Stage[], cause: PolicyChangeCause): void {
    const [now, ...upcoming] = next
    if (now === undefined) return
    this.#setUpcoming(upcoming)
    this.#use(now.config, cause)
  }

  #use (effective: Readonly<Config>, cause: PolicyChangeCause): void {
    const previous = this.#snap.hash
    this.#config = effective
    this.#snap = snapshotFromConfig(effective, this.#snap.version + 1)
    if (this.#snap.hash === previous) return
    const change: PolicyChange = { snapshot: this.#snap, config: effective, previous, cause }
    for (const fn of this.#listeners) {
      try { fn(change) } catch (err) { this.#log.error({ err }, 'policy change listener failed') }
    }
  }

  #setUpcoming (upcoming: Stage[]): void {
    this.#upcoming = upcoming
    this.#nextAt = upcoming[0]?.from ?? Infinity
    this.#armSwitchTimer()
  }

  /** Move to the latest stage whose instant has come (several, if the process slept through some). */
  #switchStage (): void {
    const now = this.#clock()
    let stage: Stage | undefined
    while (this.#upcoming[0] !== undefined && this.#upcoming[0].from <= now) stage = this.#upcoming.shift()
    this.#nextAt = this.#upcoming[0]?.from ?? Infinity
    if (stage === undefined) return
    const before = this.#snap.hash
    this.#use(stage.config, 'schedule')
    this.#log.info({ effectiveFrom: new Date(stage.from).toISOString(), policyVersion: this.#snap.hash, previous: before }, 'scheduled policy change in force')
    this.#armSwitchTimer()
  }

  #armSwitchTimer (): void {
    if (this.#switchTimer !== null) clearTimeout(this.#switchTimer)
    this.#switchTimer = null
    if (this.#closed || !Number.isFinite(this.#nextAt)) return
    const delay = Math.min(Math.max(0, this.#nextAt - this.#clock()), MAX_TIMER_MS)
    this.#switchTimer = setTimeout(() => {
      this.#switchTimer = null
      if (this.#clock() >= this.#nextAt) this.#switchStage()
      else this.#armSwitchTimer()
    }, delay)
    this.#switchTimer.unref()
  }

  #poll (): void {
    if (this.#closed) return
    this.#store.version().then((v) => {
      if (v !== this.#storeVersion) this.#scheduleRefresh()
    }, () => { this.#syncErrors++ })
  }

  #scheduleRefresh (force = false, attempt = 0): void {
    if (this.#closed) return
    if (force) this.#storeVersion = -1
    if (this.#refreshing !== null) { this.#refreshAgain = true; return }
    this.#refreshing = this.refresh().then((ok) => {
      this.#refreshing = null
      if (this.#refreshAgain) { this.#refreshAgain = false; this.#scheduleRefresh(); return }
      // A known change that could not be read: retry soon (a few times) rather than wait for the next poll.
      if (!ok && attempt < RETRIES) setTimeout(() => { this.#scheduleRefresh(false, attempt + 1) }, RETRY_MS).unref()
    })
  }

  /** One change at a time, so a refresh never interleaves with a write. */
  async #serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => {})
    return await run
  }
}

/** A tier of this configuration by name, never one of Object.prototype's members. */
function ownTier (c: Readonly<Config>, name: string): TierConfig | null {
  return Object.hasOwn(c.tiers, name) ? c.tiers[name] ?? null : null
}

function viewChange (c: Change<KeyConfig>): Change<KeyView> {
  return { before: c.before === null ? null : keyView(c.before, 'admin'), after: c.after === null ? null : keyView(c.after, 'admin') }
}

/** 256 random bits, URL-safe, with a recognisable prefix (so secret scanners can find leaked keys). */
export function newRawKey (): string {
  return `gg-${randomBytes(32).toString('base64url')}`
}
