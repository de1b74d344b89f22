import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config, QuotaConfig, TierConfig } from '../config/schema/index.js'
import type { LimitOutcome, Principal, RequestShape, Usage } from '../core/types.js'
import type { GeoResult } from '../geo/types.js'
import type { Metrics } from '../infra/metrics.js'
import type { RedisClient } from '../infra/redis.js'
import type { CounterSpec, CounterState, LimitStore } from './store.js'
import { MemoryStore } from './memory-store.js'
import { RedisStore } from './redis-store.js'
import { counterMeta, limitHeaders, type CounterMeta } from './headers.js'

export interface LimitRequest {
  principal: Principal
  /** the key's tier: its limits apply per key */
  tier: Readonly<TierConfig>
  tierName: string
  /** the caller's location tier: its limits apply per key too (both must allow, as for the policy) */
  locationTier: string
  locationTierConfig?: Readonly<TierConfig> | undefined
  /** location token quotas in force (from the live policy) */
  quotas?: readonly QuotaConfig[] | undefined
  geo: GeoResult
  shape: RequestShape
  /** tokens to reserve before forwarding: prompt estimate + max output (reservedTokens) */
  estimatedTokens: number
}

/**
 * What a request may cost, reserved before it is forwarded: the prompt estimate plus every output it may produce,
 * i.e. choices × the bound of each (the clamp the policy wrote, else what the caller asked), or — with neither —
 * the key tier's maxOutputTokens, which bounds the whole request. `n: 8, max_tokens: 1000` reserves 8,000.
 */
export function reservedTokens (shape: Readonly<RequestShape>, clampOutputTokens: number | undefined, tierMaxOutputTokens: number | undefined): number {
  const each = clampOutputTokens ?? shape.maxOutputTokens
  const out = each !== null ? each * shape.choices : tierMaxOutputTokens ?? 0
  return shape.promptTokens + out
}

export interface Limiter {
  acquire (req: LimitRequest): Promise<LimitOutcome>
  close (): Promise<void>
}

export interface LimiterDeps {
  redis: RedisClient | null
  metrics: Metrics
}

const MINUTE = 60_000
const SETTLED = Promise.resolve()

/**
 * A request's counters, with what the headers and the refusal rule call each; `policyHeader` is the
 * RateLimit-Policy value when it is the template's (no location quota added to it).
 */
interface Plan { counters: CounterSpec[], meta: CounterMeta[], failClosed: boolean, hasLease: boolean, policyHeader: string | null }

/** The static part of the plans of one key, key tier and location tier (see StoreLimiter.#template). */
interface Template {
  locationTierConfig: Readonly<TierConfig> | undefined
  /** token counters (at `tokens`) carry cost 0 here: each plan gets a copy with its own reservation */
  counters: CounterSpec[]
  tokens: number[]
  meta: CounterMeta[]
  failClosed: boolean
  hasLease: boolean
  policyHeader: string | null
}

/** templates kept per tier object: a key store far larger than this rebuilds some now and then, nothing more */
const TEMPLATES_PER_TIER = 10_000

interface Live { store: LimitStore, counters: CounterSpec[], since: number, started: number }

/**
 * The limits stage's engine: builds the counters a request is charged to, asks the store once, and turns
 * the answer into an outcome (headers, 429 / 503, settle). With Redis, a failed or slow Redis trips a short
 * breaker; meanwhile each tier follows its failMode: closed refuses (503), open decides with a local
 * in-memory limiter and marks the decision degraded. Nothing is ever retried against Redis.
 */
export class StoreLimiter implements Limiter {
  readonly #primary: LimitStore
  readonly #fallback: MemoryStore | null
  readonly #prefix: string
  readonly #cfg: Readonly<Config['limiter']>
  readonly #log: Logger
  readonly #metrics: Metrics
  readonly #live = new Map<string, Live>()
  readonly #templates = new WeakMap<Readonly<TierConfig>, Map<string, Template>>()
  /** leases whose acquire failed in a way that may have run: released (idempotently) once Redis answers */
  readonly #orphans: Array<{ counters: CounterSpec[], leaseId: string }> = []
  readonly #timer: NodeJS.Timeout
  readonly #onReady: () => void
  readonly #redis: RedisClient | null
  /** no request outlives this, so no lease is renewed past it (a settle lost to a bug cannot pin a slot) */
  readonly #maxLeaseAgeMs: number
  #downUntil = 0

  constructor (config: Readonly<Config>, log: Logger, deps: LimiterDeps) {
    this.#cfg = config.limiter
    this.#log = log
    this.#metrics = deps.metrics
    this.#prefix = config.redis.keyPrefix
    this.#redis = deps.redis
    this.#maxLeaseAgeMs = Math.max(config.server.requestTimeoutMs > 0 ? config.server.requestTimeoutMs : 3_600_000, config.limiter.leaseTtlMs)
    let redisStore: RedisStore | null = null
    if (deps.redis !== null) {
      redisStore = new RedisStore(deps.redis, config.redis.mode === 'cluster')
      this.#primary = redisStore
      this.#fallback = new MemoryStore()
    } else {
      this.#primary = new MemoryStore()
      this.#fallback = null
    }
    const preload = (): void => { redisStore?.preload().catch(() => {}) }
    this.#onReady = () => {
      this.#downUntil = 0
      preload()
    }
    deps.redis?.on('ready', this.#onReady)
    if (deps.redis?.status === 'ready') preload()
    this.#timer = setInterval(() => { void this.#maintain() }, Math.max(50, Math.floor(this.#cfg.leaseTtlMs / 3)))
    this.#timer.unref()
  }

  get store (): LimitStore { return this.#primary }

  async acquire (req: LimitRequest): Promise<LimitOutcome> {
    const plan = this.#plan(req)
    if (plan.counters.length === 0) return admitted()
    const leaseId = randomUUID()
    let store: LimitStore = this.#primary
    let degraded = false
    let res
    if (this.#fallback !== null && Date.now() < this.#downUntil) {
      store = this.#fallback
      degraded = true
    } else {
      try {
        res = await this.#primary.acquire(plan.counters, leaseId)
      } catch (err) {
        this.#failed('acquire', err)
        if (plan.hasLease) this.#orphans.push({ counters: plan.counters, leaseId })
        store = this.#fallback ?? this.#primary
        degraded = true
      }
    }
    if (degraded) {
      this.#metrics.limiterDegraded.inc({ tier: req.tierName, mode: plan.failClosed ? 'closed' : 'open' })
      if (plan.failClosed) {
        return { allowed: false, degraded: true, rule: 'limit:store-unavailable', retryAfterSeconds: null, headers: {}, reservedTokens: 0, settle: async () => {} }
      }
      res = await store.acquire(plan.counters, leaseId)
    }
    if (res === undefined) return admitted()
    const headers = limitHeaders(plan.meta, res.states, plan.policyHeader)
    if (!res.allowed) {
      const m = plan.meta[res.refused]
      return {
        allowed: false,
        degraded,
        rule: m?.rule ?? 'limit',
        retryAfterSeconds: Math.max(1, Math.ceil(res.retryAfterMs / 1000)),
        headers,
        reservedTokens: 0,
        settle: async () => {}
      }
    }
    const states = res.states
    if (plan.hasLease) {
      const now = Date.now()
      this.#live.set(leaseId, { store, counters: plan.counters, since: now, started: now })
    }
    let settled = false
    return {
      allowed: true,
      degraded,
      rule: null,
      retryAfterSeconds: null,
      headers,
      reservedTokens: req.estimatedTokens,
      // not async: #settle's own promise is the caller's (settle runs once per request)
      settle: (usage: Usage | null) => {
        if (settled) return SETTLED
        settled = true
        this.#live.delete(leaseId)
        return this.#settle(store, plan, states, leaseId, usage)
      }
    }
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    this.#redis?.off('ready', this.#onReady)
    await this.#primary.close()
    await this.#fallback?.close()
  }

  async #settle (store: LimitStore, plan: Plan, states: CounterState[], leaseId: string, usage: Usage | null): Promise<void> {
    const actual = usage === null ? null : usage.tokensIn + usage.tokensOut
    const items = []
    for (let i = 0; i < plan.counters.length; i++) {
      const c = plan.counters[i] as CounterSpec
      const m = plan.meta[i] as CounterMeta
      const mark = states[i]?.mark ?? ''
      if (c.kind === 'lease') items.push({ counter: c, mark, delta: 0 })
      else if (m.unit === 'tokens' && actual !== null && actual !== c.cost) items.push({ counter: c, mark, delta: actual - c.cost })
    }
    if (items.length === 0) return
    try {
      await store.settle(items, leaseId)
    } catch (err) {
      // Not retried (a token reconcile that ran twice would count twice); the lease expires on its own.
      this.#failed('settle', err)
    }
  }

  /** Renew the leases of long requests; release leases orphaned by failed acquires once Redis answers. */
  async #maintain (): Promise<void> {
    const now = Date.now()
    const redisUp = now >= this.#downUntil
    const third = this.#cfg.leaseTtlMs / 3
    for (const [leaseId, l] of this.#live) {
      if (now - l.started > this.#maxLeaseAgeMs) { this.#live.delete(leaseId); continue }
      if (now - l.since < third || (l.store === this.#primary && this.#fallback !== null && !redisUp)) continue
      try {
        await l.store.renew(l.counters, leaseId)
        l.since = now
      } catch (err) { this.#failed('renew', err) }
    }
    if (this.#orphans.length > 0 && redisUp) {
      const batch = this.#orphans.splice(0)
      for (const o of batch) {
        try {
          await this.#primary.settle(o.counters.filter((c) => c.kind === 'lease').map((c) => ({ counter: c, mark: o.leaseId, delta: 0 })), o.leaseId)
        } catch {
          this.#orphans.push(o)
        }
      }
    }
  }

  #failed (op: string, err: unknown): void {
    const msg = err instanceof Error ? err.message : String(err)
    const reason = /timed out/i.test(msg) ? 'timeout' : /writeable|closed|ECONNREFUSED|MaxRetries|reconnect/i.test(msg) ? 'unavailable' : 'error'
    this.#metrics.redisErrors.inc({ op, reason })
    const wasUp = Date.now() >= this.#downUntil
    if (this.#fallback !== null) this.#downUntil = Date.now() + this.#cfg.breakerMs
    if (wasUp) this.#log.warn({ op, reason, err: msg }, 'limiter store failed; deciding by failMode')
  }

  #plan (req: LimitRequest): Plan {
    const t = this.#template(req)
    const cost = req.estimatedTokens
    let counters: CounterSpec[] = t.counters
    if (t.tokens.length > 0) {
      counters = t.counters.slice()
      for (const i of t.tokens) counters[i] = { ...(t.counters[i] as CounterSpec), cost }
    }
    const quotas = req.quotas ?? []
    if (quotas.length === 0) return { counters, meta: t.meta, failClosed: t.failClosed, hasLease: t.hasLease, policyHeader: t.policyHeader }
    const meta = t.meta.slice()
    if (counters === t.counters) counters = t.counters.slice()
    for (const q of quotas) {
      if (!quotaApplies(q, req)) continue
      const qtag = `q:${enc(q.id)}`
      counters.push({ kind: 'period', key: `${this.#prefix}quota:{${qtag}}`, tag: qtag, limit: q.tokens, cost, ms: 0, period: q.period })
      meta.push(counterMeta(`quota-${q.id}`, 'tokens', null, `quota:${q.id}`, q.tokens, true))
    }
    return { counters, meta, failClosed: t.failClosed, hasLease: t.hasLease, policyHeader: null }
  }

  /**
   * What every request of one key, key tier and location tier is charged to, built once: the counters (keys,
   * limits; token counters get each request's cost), their header metadata and the RateLimit-Policy header.
   * Kept per tier object, so a policy change (new tier objects) builds afresh.
   */
  #template (req: LimitRequest): Template {
    let byTier = this.#templates.get(req.tier)
    if (byTier === undefined) {
      byTier = new Map()
      this.#templates.set(req.tier, byTier)
    }
    const id = req.locationTier + '\n' + req.tierName + '\n' + req.principal.keyId
    const hit = byTier.get(id)
    if (hit !== undefined && hit.locationTierConfig === req.locationTierConfig) return hit
    if (byTier.size >= TEMPLATES_PER_TIER) byTier.clear()
    const t = this.#buildTemplate(req)
    byTier.set(id, t)
    return t
  }

  #buildTemplate (req: LimitRequest): Template {
    const counters: CounterSpec[] = []
    const meta: CounterMeta[] = []
    const tokens: number[] = []
    const tiers: Array<[string, Readonly<TierConfig>]> = [[req.tierName, req.tier]]
    if (req.locationTierConfig !== undefined && req.locationTier !== req.tierName) tiers.push([req.locationTier, req.locationTierConfig])
    let failClosed = false
    const tag = `k:${enc(req.principal.keyId)}`
    for (const [name, t] of tiers) {
      if (t.failMode === 'closed') failClosed = true
      const l = t.limits
      if (l === undefined) continue
      const base = `${this.#prefix}lim:{${tag}}:${enc(name)}`
      if (l.requestsPerMinute !== undefined) {
        counters.push({ kind: 'window', key: `${base}:rpm`, tag, limit: l.requestsPerMinute, cost: 1, ms: MINUTE })
        meta.push(counterMeta(`${name}-requests`, 'requests', 60, `limit:${name}:requests`, l.requestsPerMinute))
      }
      if (l.tokensPerMinute !== undefined) {
        tokens.push(counters.length)
        counters.push({ kind: 'window', key: `${base}:tpm`, tag, limit: l.tokensPerMinute, cost: 0, ms: MINUTE })
        meta.push(counterMeta(`${name}-tokens`, 'tokens', 60, `limit:${name}:tokens`, l.tokensPerMinute))
      }
      if (l.concurrency !== undefined) {
        counters.push({ kind: 'lease', key: `${base}:conc`, tag, limit: l.concurrency, cost: 1, ms: this.#cfg.leaseTtlMs })
        meta.push(counterMeta(`${name}-concurrency`, 'concurrency', null, `limit:${name}:concurrency`, l.concurrency))
      }
    }
    return {
      locationTierConfig: req.locationTierConfig,
      counters,
      tokens,
      meta,
      failClosed,
      hasLease: counters.some((c) => c.kind === 'lease'),
      policyHeader: meta.length === 0 ? null : meta.map((m) => m.policyItem).join(', ')
    }
  }
}

function quotaApplies (q: QuotaConfig, req: LimitRequest): boolean {
  return q.location === req.locationTier || q.location === req.geo.country || req.geo.subdivisions.includes(q.location)
}

/** Keys are built from ids; braces would move the Cluster hash tag, so ids are percent-encoded. */
function enc (s: string): string { return encodeURIComponent(s) }

function admitted (): LimitOutcome {
  return { allowed: true, degraded: false, rule: null, retryAfterSeconds: null, headers: {}, reservedTokens: 0, settle: async () => {} }
}

export function createLimiter (config: Readonly<Config>, log: Logger, deps: LimiterDeps): StoreLimiter {
  return new StoreLimiter(config, log, deps)
}
