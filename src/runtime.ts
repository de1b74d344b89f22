import type { Logger } from 'pino'
import type { Config } from './config/schema/index.js'
import type { GeoLookup } from './geo/types.js'
import type { Limiter } from './limits/limiter.js'
import type { AuditLog } from './audit/types.js'
import type { PolicySource } from './policy/snapshot.js'
import { BackendPools } from './infra/backends.js'
import { Metrics } from './infra/metrics.js'
import { openGeo } from './geo/service.js'
import { createLimiter } from './limits/limiter.js'
import { openAudit } from './audit/log.js'
import { LivePolicy } from './policy/live.js'
import { policyVersionChange } from './policy/version.js'
import { createRedis, redisReady, type RedisClient } from './infra/redis.js'
import { resolvePath } from './config/load.js'
import { ScreeningService } from './screening/service.js'
import { FileScreeningStore, RedisScreeningStore } from './screening/store.js'
import { createObjectRoutes, type ObjectRoutes } from './infra/object-routes.js'

/**
 * The services one gateway instance runs on. Built once at start, hung off both Fastify instances
 * (`app.gg`), closed on shutdown. Nothing here is module-level: two gateways can share a process.
 */
export interface Runtime {
  /** the effective configuration: the file (swapped on reload) with the live policy overrides applied */
  readonly config: Readonly<Config>
  /** directory relative paths in the config are resolved against */
  readonly baseDir: string
  readonly log: Logger
  readonly policy: PolicySource
  /** tiers, locations and keys changed through the admin API (shared through Redis), and SIGHUP reloads */
  readonly live: LivePolicy
  readonly geo: GeoLookup
  readonly limiter: Limiter
  readonly audit: AuditLog
  readonly backends: BackendPools
  readonly metrics: Metrics
  /** null when no Redis is configured (in-memory stores, one replica) */
  readonly redis: RedisClient | null
  /** the denied-party list in service (shared through Redis) and screening against it */
  readonly screening: ScreeningService
  /** id -> backend of stored objects (responses, jobs), for the endpoints whose body names no model */
  readonly objects: ObjectRoutes
}

export interface RuntimeOverrides {
  geo?: GeoLookup
  limiter?: Limiter
  audit?: AuditLog
  policy?: PolicySource
  redis?: RedisClient | null
  /** this process's audit chain id instead of audit.writerId (serve --workers: one chain per worker) */
  auditWriterId?: string
  /** epoch ms for the policy's schedule (tests move it past a switch) */
  clock?: () => number
}

export async function createRuntime (config: Readonly<Config>, baseDir: string, log: Logger, overrides: RuntimeOverrides = {}): Promise<Runtime> {
  const metrics = new Metrics()
  const geo = overrides.geo ?? await openGeo(config.geo, baseDir, log.child({ stage: 'geo' }), metrics)
  const redis = overrides.redis !== undefined ? overrides.redis : await createRedis(config.redis, log.child({ stage: 'redis' }))
  let audit: AuditLog
  try {
    if (redis !== null) await redisReady(redis, config.redis.connectTimeoutMs)
    const auditConfig = overrides.auditWriterId === undefined ? config.audit : { ...config.audit, writerId: overrides.auditWriterId }
    audit = overrides.audit ?? await openAudit(auditConfig, baseDir, log.child({ stage: 'audit' }))
  } catch (err) {
    await geo.close() // its file watchers would otherwise keep a failed start alive
    throw err
  }
  const live = await LivePolicy.open(config, redis, log.child({ stage: 'policy' }), overrides.clock === undefined ? {} : { clock: overrides.clock })
  recordPolicyVersions(live, audit)
  const screening = await ScreeningService.open(
    redis === null ? new FileScreeningStore(resolvePath(baseDir, config.screening.dir)) : new RedisScreeningStore(redis, { prefix: config.redis.keyPrefix, log }),
    { config: () => live.config().screening, log: log.child({ stage: 'screening' }), registry: metrics.registry })
  const backends = new BackendPools(config.backends)
  metrics.attach({ audit, live, backends, ...(redis === null ? {} : { seen: { redis, prefix: config.redis.keyPrefix } }) })
  return {
    get config () { return live.config() },
    baseDir,
    log,
    policy: overrides.policy ?? live,
    live,
    geo,
    limiter: overrides.limiter ?? createLimiter(config, log.child({ stage: 'limits' }), { redis, metrics }),
    audit,
    backends,
    metrics,
    redis,
    screening,
    objects: createObjectRoutes(redis, config.redis.keyPrefix, config.server.objectRoutesTtlSeconds, log.child({ stage: 'forward' }))
  }
}

/**
 * Every effective policy this replica serves goes into its audit chain once, in full, before any record it decided:
 * the one in force at start, then each new one (reload, admin change, another replica's change, a scheduled switch).
 */
function recordPolicyVersions (live: LivePolicy, audit: AuditLog): void {
  const written = new Set<string>()
  const write = (hash: string, config: Readonly<Config>, cause: string, previous: string | null): void => {
    if (written.has(hash)) return
    written.add(hash)
    audit.appendAdminChange(policyVersionChange(config, hash, cause, previous, new Date().toISOString()))
  }
  const snap = live.snapshot()
  write(snap.hash, live.config(), 'start', null)
  live.onChange((c) => { write(c.snapshot.hash, c.config, c.cause, c.previous) })
}

/**
 * Close every part, in order, each even when one before it failed (a dead audit disk must not leave watchers, the
 * policy store and Redis connections holding the process open); the first failure is thrown at the end.
 */
export async function closeRuntime (rt: Runtime): Promise<void> {
  const failures: unknown[] = []
  const parts: Array<() => unknown> = [
    async () => { await rt.backends.close() },
    async () => { await rt.limiter.close() },
    async () => { await rt.audit.close() },
    async () => { await rt.geo.close() },
    async () => { await rt.live.close() },
    async () => { await rt.screening.close() },
    () => { rt.redis?.disconnect() }
  ]
  for (const close of parts) {
    try { await close() } catch (err) { failures.push(err) }
  }
  if (failures.length > 0) throw failures[0]
}

declare module 'fastify' {
  interface FastifyInstance {
    gg: Runtime
  }
}
