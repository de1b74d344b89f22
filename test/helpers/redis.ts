import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis, Cluster } from 'ioredis'

/** The Redis tests share: REDIS_URL, else the machine's 127.0.0.1:6379. */
export function sharedRedisUrl (): string { return process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' }

/** A key prefix no other test (or person) uses; pass it as redis.keyPrefix and clean it up after. */
export function uniquePrefix (name: string): string { return `ggtest:${name}:${randomBytes(6).toString('hex')}:` }

/** Delete every key under a prefix (SCAN, never KEYS). */
export async function deletePrefix (client: Redis | Cluster, prefix: string): Promise<void> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client]
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      for (const k of keys) await client.del(k)
    } while (cursor !== '0')
  }
}

/** Sum of a window counter's buckets (hash of bucket -> units). */
export async function windowTotal (client: Redis | Cluster, key: string): Promise<number> {
  const h = await client.hgetall(key)
  return Object.values(h).reduce((a, v) => a + Number(v), 0)
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => { resolve(port) })
    })
  })
}

export interface RedisProcess { port: number, url: string, proc: ChildProcess, dir: string, stop (): Promise<void> }

/** A redis-server of the test's own on a free port (no persistence), ready when this resolves. */
export async function startRedisServer (extra: string[] = [], port?: number, dir?: string): Promise<RedisProcess> {
  const p = port ?? await freePort()
  const d = dir ?? await mkdtemp(join(tmpdir(), 'geogate-redis-'))
  const proc = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', d, ...extra], { stdio: 'ignore' })
  await waitFor(async () => await ping(p), 5000, `redis-server on ${p}`)
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    proc,
    dir: d,
    async stop () {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((resolve) => proc.once('exit', resolve))
        proc.kill('SIGCONT')
        proc.kill('SIGKILL')
        await gone
      }
      if (dir === undefined) await rm(d, { recursive: true, force: true })
    }
  }
}

export async function ping (port: number): Promise<boolean> {
  return await pingUrl(`redis://127.0.0.1:${port}`)
}

async function pingUrl (url: string): Promise<boolean> {
  const c = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500, commandTimeout: 500 })
  c.on('error', () => {})
  try {
    await c.connect()
    return (await c.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    c.disconnect()
  }
}

/**
 * The Redis a test uses (the contract in the README): REDIS_URL, else redis://127.0.0.1:6379, else a
 * redis-server of its own on a free port, stopped by the returned stop().
 */
export async function testRedis (): Promise<{ url: string, stop: () => Promise<void> }> {
  const candidates = [process.env.REDIS_URL, 'redis://127.0.0.1:6379'].filter((u): u is string => u !== undefined && u !== '')
  for (const url of candidates) if (await pingUrl(url)) return { url, stop: async () => {} }
  const own = await startRedisServer()
  return { url: own.url, stop: own.stop }
}

/** Poll a condition until it holds (an event we cannot subscribe to), failing after `ms`; resolves with the time it took. */
export async function waitFor (cond: () => Promise<boolean> | boolean, ms: number, what: string): Promise<number> {
  const start = Date.now()
  const end = start + ms
  for (;;) {
    if (await cond()) return Date.now() - start
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

export interface RedisClusterProcesses { nodes: RedisProcess[], seeds: string[], stop (): Promise<void> }

/** A 3-master Redis Cluster on free ports, created with redis-cli --cluster create, state ok when this resolves. */
export async function startRedisCluster (): Promise<RedisClusterProcesses> {
  const nodes: RedisProcess[] = []
  for (let i = 0; i < 3; i++) {
    const dir = await mkdtemp(join(tmpdir(), 'geogate-cluster-'))
    nodes.push(await startRedisServer(['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000'], undefined, dir))
  }
  const seeds = nodes.map((n) => `127.0.0.1:${n.port}`)
  const r = spawnSync('redis-cli', ['--cluster', 'create', ...seeds, '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stdout} ${r.stderr}`)
  await waitFor(async () => {
    for (const n of nodes) {
      const c = new Redis({ port: n.port, lazyConnect: true, maxRetriesPerRequest: 0 })
      c.on('error', () => {})
      try {
        await c.connect()
        const info = await c.cluster('INFO')
        if (!String(info).includes('cluster_state:ok')) return false
      } finally { c.disconnect() }
    }
    return true
  }, 10_000, 'cluster_state:ok')
  return {
    nodes,
    seeds,
    async stop () {
      for (const n of nodes) {
        await n.stop()
        await rm(n.dir, { recursive: true, force: true })
      }
    }
  }
}
