import { Registry, Counter, Histogram, Gauge, collectDefaultMetrics } from 'prom-client'
import type { RedisClient } from './redis.js'
import { CountrySightings } from './sightings.js'

/** What the audit gauges read: the log's own account of what is not yet durable. */
export interface AuditStatsSource { stats?: () => { queueDepth: number, lagSeconds: number, writeErrors?: number, dropped?: number, failing?: boolean }, readonly publicKeyPem?: string | null, anchorStats?: () => { pending: number, failures: number } }

/** What the gauges read at scrape time (attached once the runtime is built). All optional, so a test can build Metrics alone. */
export interface MetricSources {
  audit?: AuditStatsSource
  backends?: { readonly inFlight: number }
  live?: { readonly storeVersion: number, readonly syncErrors: number, snapshot: () => { readonly hash: string } }
  /** with Redis, "first time this key is seen from this country" is decided across every replica */
  seen?: { redis: RedisClient, prefix: string }
}

/** Caps the distinct values a label may take; beyond the cap a value is reported as "other". */
class BoundedLabel {
  readonly #seen = new Set<string>()
  constructor (readonly max: number) {}
  get (v: string): string {
    if (this.#seen.has(v)) return v
    if (this.#seen.size >= this.max) return 'other'
    this.#seen.add(v)
    return v
  }
}

/**
 * A counter's increments on the request path, kept by label values in a Map and handed to the counter when it is
 * collected (every scrape, every read through the registry). prom-client hashes and validates a label object on
 * each inc(); here a request costs one Map lookup per counter, on a key its caller builds from the values.
 */
class Tally<L extends string> {
  /** fresh: not handed to the counter yet (an increment of 0 still creates its series, as inc(labels, 0) does) */
  readonly #pending = new Map<string, { labels: Record<L, string>, n: number, fresh: boolean }>()
  #counter: Counter<L> | null = null

  attach (counter: Counter<L>): Counter<L> {
    this.#counter = counter
    return counter
  }

  /**
   * `key` names the label values (any text that differs when they differ); `labels` is called on its first use.
   * A count that is not a finite number ≥ 0 is dropped here (the counter would refuse it at every scrape).
   */
  inc (key: string, labels: () => Record<L, string>, n = 1): void {
    if (!(n >= 0) || n === Infinity) return
    const p = this.#pending.get(key)
    if (p === undefined) this.#pending.set(key, { labels: labels(), n, fresh: true })
    else p.n += n
  }

  flush (): void {
    const c = this.#counter
    if (c === null) return
    for (const p of this.#pending.values()) {
      if (p.n === 0 && !p.fresh) continue
      c.inc(p.labels, p.n)
      p.n = 0
      p.fresh = false
    }
  }
}

/**
 * Every metric the gateway exports, on a registry of its own (never prom-client's global one), so two
 * gateways in one process do not collide. Label values are bounded: no IPs, no keys, models only when
 * configured, rules and tiers capped. docker/prometheus/alerts.yml and docker/grafana/ use these names
 * (test/admin/alerts.test.ts checks every name they use is declared here).
 */
export class Metrics {
  readonly registry = new Registry()
  #sources: MetricSources = {}
  readonly #rules = new BoundedLabel(200)
  readonly #tiers = new BoundedLabel(50)
  readonly #sightings = new CountrySightings(
    () => this.#sources.seen,
    (keyId) => { this.keyNewCountry.inc({ key_id: keyId }) },
    () => { this.redisErrors.inc({ op: 'seen_countries', reason: 'error' }) })

  readonly #requestsTally = new Tally<'decision' | 'rule' | 'location_tier' | 'model' | 'status'>()
  readonly requests = this.#requestsTally.attach(new Counter({
    name: 'geogate_requests_total',
    help: 'Requests by decision, rule, location tier, model and status',
    labelNames: ['decision', 'rule', 'location_tier', 'model', 'status'] as const,
    registers: [this.registry],
    collect: () => { this.#requestsTally.flush() }
  }))

  readonly gatewayLatency = new Histogram({
    name: 'geogate_gateway_added_seconds',
    help: 'Time spent in the gateway before the request is sent upstream',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry]
  })

  readonly upstreamLatency = new Histogram({
    name: 'geogate_upstream_seconds',
    help: 'Backend response time (headers to end of body)',
    labelNames: ['backend'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry]
  })

  readonly timeToFirstToken = new Histogram({
    name: 'geogate_time_to_first_token_seconds',
    help: 'Streams: time from request to the first chunk from the backend',
    labelNames: ['backend'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry]
  })

  readonly #tokensTally = new Tally<'direction' | 'model' | 'location_tier'>()
  readonly tokens = this.#tokensTally.attach(new Counter({
    name: 'geogate_tokens_total',
    help: 'Tokens by direction (in, out), model and location tier',
    labelNames: ['direction', 'model', 'location_tier'] as const,
    registers: [this.registry],
    collect: () => { this.#tokensTally.flush() }
  }))

  readonly inFlight: Gauge = new Gauge({
    name: 'geogate_in_flight_requests',
    help: 'Requests forwarded to a backend and not finished yet',
    registers: [this.registry],
    collect: () => {
      const b = this.#sources.backends
      if (b !== undefined) this.inFlight.set(b.inFlight)
    }
  })

  readonly #limiterTally = new Tally<'result' | 'degraded'>()
  readonly limiterDecisions = this.#limiterTally.attach(new Counter({
    name: 'geogate_limiter_decisions_total',
    help: 'Limit decisions: allowed, limited (429) or unavailable (503), and whether Redis was bypassed',
    labelNames: ['result', 'degraded'] as const,
    registers: [this.registry],
    collect: () => { this.#limiterTally.flush() }
  }))

  readonly limiterDegraded = new Counter({
    name: 'geogate_limiter_degraded_total',
    help: 'Limit decisions made without Redis, by tier and fail mode (open: local fallback, closed: 503)',
    labelNames: ['tier', 'mode'] as const,
    registers: [this.registry]
  })

  readonly redisErrors = new Counter({
    name: 'geogate_redis_errors_total',
    help: 'Redis commands that failed, by operation (limiter ops, seen_countries) and reason (timeout, unavailable, error)',
    labelNames: ['op', 'reason'] as const,
    registers: [this.registry]
  })

  // GeoIP: database age and staleness per layer, reloads, and lookups that found no location
  readonly geodbAgeDays = new Gauge({
    name: 'geogate_geodb_age_days',
    // several workers (serve --workers): their aggregate on /metrics is the max, not the sum
    aggregator: 'max',
    help: 'Age of each GeoIP database layer in service (days since its build epoch)',
    labelNames: ['database', 'file'] as const,
    registers: [this.registry]
  })

  readonly geodbStale = new Gauge({
    name: 'geogate_geodb_stale',
    // several workers (serve --workers): their aggregate on /metrics is the max, not the sum
    aggregator: 'max',
    help: '1 when a GeoIP database in service is older than geo.maxAgeDays',
    registers: [this.registry]
  })

  readonly geodbReloads = new Counter({
    name: 'geogate_geodb_reloads_total',
    help: 'GeoIP database reloads after a file change, by result (ok, error: the old database stays in service)',
    labelNames: ['result'] as const,
    registers: [this.registry]
  })

  readonly geoUnknown = new Counter({
    name: 'geogate_geo_unknown_location_total',
    help: 'Lookups that resolved no location, by reason (not_found, stale, invalid_ip)',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  readonly #anonymizerTally = new Tally<'kind' | 'decision'>()
  readonly anonymizer = this.#anonymizerTally.attach(new Counter({
    name: 'geogate_anonymizer_requests_total',
    help: 'Requests from anonymizers (VPN, Tor, hosting, public or residential proxy) by kind and decision',
    labelNames: ['kind', 'decision'] as const,
    registers: [this.registry],
    collect: () => { this.#anonymizerTally.flush() }
  }))

  readonly #crossBorderTally = new Tally<'decision' | 'country'>()
  readonly crossBorder = this.#crossBorderTally.attach(new Counter({
    name: 'geogate_cross_border_requests_total',
    help: 'Model interactions crossing a border (caller country differs from the serving region) by decision and caller country',
    labelNames: ['decision', 'country'] as const,
    registers: [this.registry],
    collect: () => { this.#crossBorderTally.flush() }
  }))

  readonly keyCountryMismatch = new Counter({
    name: 'geogate_key_country_mismatch_total',
    help: 'Requests with a key used from a country other than the one it declares',
    labelNames: ['key_id'] as const,
    registers: [this.registry]
  })

  readonly keyNewCountry = new Counter({
    name: 'geogate_key_new_country_total',
    help: 'First sighting of a key from a country (shared across replicas when Redis is configured)',
    labelNames: ['key_id'] as const,
    registers: [this.registry]
  })

  readonly auditQueueDepth: Gauge = new Gauge({
    name: 'geogate_audit_queue_depth',
    help: 'Audit records accepted but not yet written and fsynced',
    registers: [this.registry],
    collect: () => {
      const s = this.#sources.audit?.stats?.()
      if (s !== undefined) this.auditQueueDepth.set(s.queueDepth)
    }
  })

  readonly auditLag: Gauge = new Gauge({
    name: 'geogate_audit_writer_lag_seconds',
    // several workers (serve --workers): their aggregate on /metrics is the max, not the sum
    aggregator: 'max',
    help: 'Age of the oldest audit record or journal entry not yet written and fsynced, retries included (0 when none)',
    registers: [this.registry],
    collect: () => {
      const s = this.#sources.audit?.stats?.()
      if (s !== undefined) this.auditLag.set(s.lagSeconds)
    }
  })

  readonly auditAnchorPending: Gauge = new Gauge({
    name: 'geogate_audit_anchor_pending',
    help: 'Signed digests not yet time-stamped (audit.tsa) or appended to every witness (audit.witness)',
    registers: [this.registry],
    collect: () => {
      const a = this.#sources.audit?.anchorStats?.()
      if (a !== undefined) this.auditAnchorPending.set(a.pending)
    }
  })

  #anchorFailuresCounted = 0
  readonly auditAnchorFailures: Counter = new Counter({
    name: 'geogate_audit_anchor_failures_total',
    help: 'Failed attempts to time-stamp or witness a digest (each is retried with backoff)',
    registers: [this.registry],
    collect: () => {
      const n = this.#sources.audit?.anchorStats?.().failures ?? 0
      if (n > this.#anchorFailuresCounted) this.auditAnchorFailures.inc(n - this.#anchorFailuresCounted)
      this.#anchorFailuresCounted = n
    }
  })

  readonly auditSigned: Gauge = new Gauge({
    name: 'geogate_audit_signed',
    help: '1 when this replica signs its audit digests (Ed25519), 0 when they are unsigned',
    registers: [this.registry],
    collect: () => {
      const a = this.#sources.audit
      if (a !== undefined && a.publicKeyPem !== undefined) this.auditSigned.set(a.publicKeyPem === null ? 0 : 1)
    }
  })

  readonly auditWriteFailing: Gauge = new Gauge({
    name: 'geogate_audit_write_failing',
    help: '1 while audit writes fail or are stuck (ENOSPC, EIO, EROFS, a dead mount); /readyz says why',
    registers: [this.registry],
    collect: () => {
      const s = this.#sources.audit?.stats?.()
      if (s !== undefined) this.auditWriteFailing.set(s.failing === true ? 1 : 0)
    }
  })

  #auditErrorsCounted = 0
  readonly auditWriteErrors: Counter = new Counter({
    name: 'geogate_audit_write_errors_total',
    help: 'Failed audit group commits (each is retried with backoff; nothing is dropped)',
    registers: [this.registry],
    collect: () => {
      const n = this.#sources.audit?.stats?.().writeErrors ?? 0
      if (n > this.#auditErrorsCounted) this.auditWriteErrors.inc(n - this.#auditErrorsCounted)
      this.#auditErrorsCounted = n
    }
  })

  #auditDroppedCounted = 0
  readonly auditRecordsDropped: Counter = new Counter({
    name: 'geogate_audit_records_dropped_total',
    help: 'Audit records lost because the in-memory backlog (audit.maxHeldRecords) was full while writes failed',
    registers: [this.registry],
    collect: () => {
      const n = this.#sources.audit?.stats?.().dropped ?? 0
      if (n > this.#auditDroppedCounted) this.auditRecordsDropped.inc(n - this.#auditDroppedCounted)
      this.#auditDroppedCounted = n
    }
  })

  readonly auditJournalWait = new Histogram({
    name: 'geogate_audit_journal_wait_seconds',
    help: 'Time a request waited for its in-flight audit journal entry to be durable (fdatasync, group commit) before it was forwarded',
    // fine below 2.5 ms, where a group-committed fdatasync lands, so a p50 interpolated within buckets means something
    buckets: [0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry]
  })

  readonly auditUnavailable = new Counter({
    name: 'geogate_audit_unavailable_total',
    help: 'Interactions refused with 503 audit_unavailable: their journal entry could not be made durable (audit.onFailure: refuse)',
    registers: [this.registry]
  })

  readonly auditUnrecordedServed = new Counter({
    name: 'geogate_audit_unrecorded_served_total',
    help: 'Interactions forwarded without a durable journal entry (audit.onFailure: serve)',
    registers: [this.registry]
  })

  readonly policyVersion: Gauge = new Gauge({
    name: 'geogate_policy_version',
    // several workers (serve --workers): their aggregate on /metrics is the min, not the sum
    aggregator: 'min',
    help: 'Counter of the shared policy overrides this replica has read (Redis; 0 without). Not the policy version: see geogate_policy_info',
    registers: [this.registry],
    collect: () => {
      const live = this.#sources.live
      if (live !== undefined) this.policyVersion.set(Math.max(0, live.storeVersion))
    }
  })

  /**
   * THE policy version: the content hash of the effective policy (file plus live overrides) this replica decides
   * with. Replicas sharing a store must show one hash; GeogatePolicyOutOfSync fires when they do not.
   */
  readonly policyInfo: Gauge<'hash'> = new Gauge({
    name: 'geogate_policy_info',
    help: 'Always 1; the hash label is the content hash of the effective policy (file + live overrides) this replica applies',
    labelNames: ['hash'] as const,
    registers: [this.registry],
    collect: () => {
      const live = this.#sources.live
      if (live === undefined) return
      this.policyInfo.reset()
      this.policyInfo.set({ hash: live.snapshot().hash }, 1)
    }
  })

  #syncErrorsCounted = 0
  readonly policySyncErrors: Counter = new Counter({
    name: 'geogate_policy_sync_errors_total',
    help: 'Failed reads of the shared policy overrides (the running policy was kept)',
    registers: [this.registry],
    collect: () => {
      const n = this.#sources.live?.syncErrors ?? 0
      if (n > this.#syncErrorsCounted) this.policySyncErrors.inc(n - this.#syncErrorsCounted)
      this.#syncErrorsCounted = n
    }
  })

  readonly policyReloads = new Counter({
    name: 'geogate_policy_reloads_total',
    help: 'Configuration reloads (SIGHUP or POST /admin/reload) by result',
    labelNames: ['result'] as const,
    registers: [this.registry]
  })

  readonly countryMismatch = new Counter({
    name: 'geogate_country_mismatch_total',
    help: "Calls from a country other than the key's declared one, by the action the tiers take (alert, review, deny)",
    labelNames: ['action'] as const,
    registers: [this.registry]
  })

  readonly adminChanges = new Counter({
    name: 'geogate_admin_changes_total',
    help: 'Changes made through the admin API by action',
    labelNames: ['action'] as const,
    registers: [this.registry]
  })

  constructor () {
    // prom-client's names already start with process_ / nodejs_: one geogate_ prefix gives geogate_process_cpu_seconds_total
    // and geogate_nodejs_eventloop_lag_seconds (and its percentiles: event-loop lag).
    collectDefaultMetrics({ register: this.registry, prefix: 'geogate_' })
  }

  attach (sources: MetricSources): void {
    this.#sources = sources
  }

  /** a model as a label: configured models by name, anything else `other`, none `none` */
  /** A finished request in geogate_requests_total (the request path's way: see Tally). */
  countRequest (decision: string, rule: string, locationTier: string, model: string, status: number): void {
    this.#requestsTally.inc(decision + '\u0000' + rule + '\u0000' + locationTier + '\u0000' + model + '\u0000' + String(status),
      () => ({ decision, rule, location_tier: locationTier, model, status: String(status) }))
  }

  /** A request's usage in geogate_tokens_total. */
  countTokens (model: string, locationTier: string, tokensIn: number, tokensOut: number): void {
    const key = model + '\u0000' + locationTier
    this.#tokensTally.inc('in\u0000' + key, () => ({ direction: 'in', model, location_tier: locationTier }), tokensIn)
    this.#tokensTally.inc('out\u0000' + key, () => ({ direction: 'out', model, location_tier: locationTier }), tokensOut)
  }

  /** A request from an anonymizer, per trait, in geogate_anonymizer_requests_total. */
  countAnonymizer (kind: string, decision: 'allow' | 'deny'): void {
    this.#anonymizerTally.inc(kind + '\u0000' + decision, () => ({ kind, decision }))
  }

  /** An interaction crossing a border in geogate_cross_border_requests_total. */
  countCrossBorder (decision: 'allow' | 'deny', country: string): void {
    this.#crossBorderTally.inc(decision + '\u0000' + country, () => ({ decision, country }))
  }

  /** A limit decision in geogate_limiter_decisions_total. */
  countLimitDecision (result: 'allowed' | 'limited' | 'unavailable', degraded: boolean): void {
    this.#limiterTally.inc(degraded ? result + '+' : result, () => ({ result, degraded: String(degraded) }))
  }

  modelLabel (model: string | null, configured: { has (name: string): boolean }): string {
    if (model === null) return 'none'
    return configured.has(model) ? model : 'other'
  }

  ruleLabel (rule: string): string { return this.#rules.get(rule) }
  tierLabel (tier: string): string { return this.#tiers.get(tier) }

  /** A caller seen from a country; counted once per key and country (across replicas when Redis is attached). */
  sighting (keyId: string, country: string, declared: string | undefined): void {
    this.#sightings.see(keyId, country, declared)
  }
}
