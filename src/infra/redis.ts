import type { Redis, Cluster, RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { RedisConfig } from '../config/schema/index.js'
import { loadOptional } from '../core/optional.js'

export type RedisClient = Redis | Cluster

/** A Cluster client (without importing ioredis for an `instanceof`: a gateway without Redis never loads it). */
export function isCluster (client: RedisClient): client is Cluster {
  return client.isCluster
}

/**
 * One Redis connection (single, Sentinel or Cluster) for the limiter and the live policy.
 * No offline queue: a command sent while Redis is away fails at once instead of being replayed later
 * (replays double-count: OpenWA#932, fastify-rate-limit#84). Every command is bounded by commandTimeout,
 * and reconnects back off up to 2 s forever, so recovery is automatic.
 * ioredis (~7 MB of RSS) is imported only when Redis is configured.
 */
export async function createRedis (config: Readonly<RedisConfig>, log: Logger): Promise<RedisClient | null> {
  if (config.url === undefined && (config.nodes === undefined || config.nodes.length === 0)) return null
  const { Redis, Cluster } = await loadOptional('ioredis', 'redis', async () => await import('ioredis'))
  const common: RedisOptions = {
    enableOfflineQueue: false,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    maxRetriesPerRequest: 0,
    // A command sent before a disconnect may have run: never send it again on the new connection.
    autoResendUnfulfilledCommands: false,
    autoResubscribe: true,
    lazyConnect: false,
    // Commands issued in one turn of the event loop go out in one write (and come back in one read): under load,
    // one syscall pair for many requests' limit checks instead of one each. Order and replies are per command.
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    ...(config.password !== undefined ? { password: config.password } : {})
  }
  let client: RedisClient
  if (config.mode === 'cluster') {
    const nodes = (config.nodes ?? [config.url ?? '']).map(parseHostPort)
    client = new Cluster(nodes, {
      enableOfflineQueue: false,
      // No auto-pipelining on Cluster: with it, concurrent limit checks across replicas failed now and then
      // (test/limits/cluster.test.ts: 240 requests, limit 100, some answered neither 200 nor 429).
      clusterRetryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      redisOptions: { ...common, enableAutoPipelining: false },
      slotsRefreshTimeout: config.connectTimeoutMs
    })
  } else if (config.mode === 'sentinel') {
    client = new Redis({
      ...common,
      sentinels: (config.nodes ?? []).map(parseHostPort),
      name: config.sentinelName ?? 'mymaster'
    })
  } else {
    client = new Redis(config.url ?? 'redis://127.0.0.1:6379', common)
  }
  let down = false
  client.on('error', (err: Error) => {
    if (!down) log.warn({ err: err.message }, 'redis unavailable')
    down = true
  })
  client.on('ready', () => {
    if (down) log.info('redis available again')
    down = false
  })
  return client
}

function parseHostPort (s: string): { host: string, port: number } {
  const u = s.includes('://') ? new URL(s) : new URL(`redis://${s}`)
  return { host: u.hostname, port: Number(u.port || 6379) }
}

/**
 * Wait (at most `ms`) for the first connection, so a gateway that just started does not make its first
 * decisions without Redis. False when Redis is not there yet: the gateway starts anyway and every tier
 * follows its failMode until Redis appears.
 */
export async function redisReady (client: RedisClient, ms: number): Promise<boolean> {
  if (client.status === 'ready') return true
  return await new Promise<boolean>((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      resolve(ok)
    }
    const onReady = (): void => { done(true) }
    const timer = setTimeout(() => { done(false) }, ms)
    client.on('ready', onReady)
  })
}
