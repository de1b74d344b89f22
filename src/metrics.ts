import { Registry, Counter, Histogram, Gauge, collectDefaultMetrics } from 'prom-client'

/**
 * Every metric the gateway exports, on a registry of its own (never prom-client's global one), so two
 * gateways in one process do not collide. Label values are bounded: no IPs, no keys.
 */
export class Metrics {
  readonly registry = new Registry()
  readonly requests = new Counter({
    name: 'geogate_requests_total',
    help: 'Requests by decision, rule, location tier, model and status',
    labelNames: ['decision', 'rule', 'location_tier', 'model', 'status'] as const,
    registers: [this.registry]
  })

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

  readonly tokens = new Counter({
    name: 'geogate_tokens_total',
    help: 'Tokens by direction (in, out), model and location tier',
    labelNames: ['direction', 'model', 'location_tier'] as const,
    registers: [this.registry]
  })

  readonly inFlight = new Gauge({
    name: 'geogate_in_flight_requests',
    help: 'Requests being served',
    registers: [this.registry]
  })

  readonly limiterDegraded = new Counter({
    name: 'geogate_limiter_degraded_total',
    help: 'Limit decisions made without Redis, by tier and fail mode (open: local fallback, closed: 503)',
    labelNames: ['tier', 'mode'] as const,
    registers: [this.registry]
  })

  readonly redisErrors = new Counter({
    name: 'geogate_redis_errors_total',
    help: 'Limiter Redis commands that failed, by operation and reason (timeout, unavailable, error)',
    labelNames: ['op', 'reason'] as const,
    registers: [this.registry]
  })

  // GeoIP (issue 3): database age and staleness per layer, reloads, and lookups that found no location
  readonly geodbAgeDays = new Gauge({
    name: 'geogate_geodb_age_days',
    help: 'Age of each GeoIP database layer in service (days since its build epoch)',
    labelNames: ['database', 'file'] as const,
    registers: [this.registry]
  })

  readonly geodbStale = new Gauge({
    name: 'geogate_geodb_stale',
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

  constructor () {
    collectDefaultMetrics({ register: this.registry, prefix: 'geogate_process_' })
  }
}
