import t from 'tap'
import { Redis } from 'ioredis'
import { buildTestGateway, baseConfig, startUpstream, type TestGateway } from '../helpers/gateway.js'
import { startRedisServer, uniquePrefix, waitFor, windowTotal, type RedisProcess } from '../helpers/redis.js'

/*
 * Redis faults on a redis-server this test starts on a free port: killed (SIGKILL, then restarted),
 * frozen (SIGSTOP, then SIGCONT) and paused (CLIENT PAUSE WRITE). The tier2 key fails closed (503, fast),
 * the tier1 key fails open (served by the local fallback, marked degraded); both recover on their own,
 * and Redis never holds a request twice.
 */
const CLOSED_BOUND_MS = 1000

const tiers = {
  tier1: { models: ['*'], capabilities: ['chat'], limits: { requestsPerMinute: 1000 }, failMode: 'open' },
  tier2: { models: ['llama-*'], capabilities: ['chat'], limits: { requestsPerMinute: 1000 }, failMode: 'closed' },
  embargoed: { deny: true }
}

interface Tally { ok: number, unavailable: number, worstMs: number, ms: number[] }

async function send (gw: TestGateway, key: string, tally: Tally): Promise<number> {
  const started = performance.now()
  const res = await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { authorization: `Bearer ${key}` },
    payload: { model: 'llama-3.1-8b', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }
  })
  const ms = performance.now() - started
  if (res.statusCode === 200) tally.ok++
  if (res.statusCode === 503) {
    tally.unavailable++
    tally.worstMs = Math.max(tally.worstMs, ms)
    tally.ms.push(ms)
    if (res.json().error.code !== 'service_unavailable') throw new Error('503 without service_unavailable')
    if (res.headers['retry-after'] !== '1') throw new Error('503 without Retry-After: 1 (the breaker span)')
  }
  return res.statusCode
}

async function metric (gw: TestGateway, name: 'limiterDegraded' | 'redisErrors', labels: Record<string, string>): Promise<number> {
  const m = await gw.rt.metrics[name].get()
  return m.values.filter((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val)).reduce((a, v) => a + v.value, 0)
}

const scenarios: Array<{ name: string, inject: (r: RedisProcess, admin: Redis) => Promise<void>, heal: (r: RedisProcess, admin: Redis) => Promise<RedisProcess>, restarts: boolean }> = [
  {
    name: 'SIGKILL',
    restarts: true,
    inject: async (r) => { await r.stop() },
    heal: async (r) => await startRedisServer([], r.port)
  },
  {
    name: 'SIGSTOP',
    restarts: false,
    inject: async (r) => { r.proc.kill('SIGSTOP') },
    heal: async (r) => { r.proc.kill('SIGCONT'); return r }
  },
  {
    name: 'CLIENT PAUSE',
    restarts: false,
    inject: async (_r, admin) => { await admin.client('PAUSE', 60_000, 'WRITE') },
    heal: async (r, admin) => { await admin.client('UNPAUSE'); return r }
  }
]

for (const s of scenarios) {
  t.test(`Redis ${s.name}: closed answers 503 fast, open serves degraded, both recover, no double count`, async (t) => {
    let redis = await startRedisServer()
    const prefix = uniquePrefix('faults')
    const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
    const gw = await buildTestGateway(baseConfig(up.url, { tiers, redis: { url: redis.url, keyPrefix: prefix, commandTimeoutMs: 100 } }))
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 0 })
    admin.on('error', () => {})
    t.teardown(async () => {
      admin.disconnect()
      await gw.close()
      await up.close()
      await redis.stop()
    })
    const open: Tally = { ok: 0, unavailable: 0, worstMs: 0, ms: [] }
    const closed: Tally = { ok: 0, unavailable: 0, worstMs: 0, ms: [] }

    // healthy first (on a loaded machine a cold first command can overrun the 100 ms timeout; wait it out)
    await waitFor(async () => await send(gw, 'test-key-tier2', closed) === 200, 10_000, 'closed tier served')
    t.equal(await send(gw, 'test-key-tier1', open), 200, 'healthy: open tier served')
    closed.ms.length = 0
    closed.worstMs = 0

    await s.inject(redis, admin)
    for (let i = 0; i < 5; i++) {
      t.equal(await send(gw, 'test-key-tier2', closed), 503, 'fail closed: 503')
      t.equal(await send(gw, 'test-key-tier1', open), 200, 'fail open: served')
    }
    t.ok(closed.worstMs < CLOSED_BOUND_MS, `slowest 503 took ${closed.worstMs.toFixed(1)} ms (bound ${CLOSED_BOUND_MS} ms)`)
    t.comment(`${s.name}: fail-closed 503 latencies ${closed.ms.map((x) => x.toFixed(1)).join(', ')} ms`)
    t.ok(await metric(gw, 'limiterDegraded', { mode: 'open' }) >= 5, 'open decisions marked degraded')
    t.ok(await metric(gw, 'limiterDegraded', { mode: 'closed' }) >= 5, 'closed refusals counted')
    t.ok(await metric(gw, 'redisErrors', { op: 'acquire' }) >= 1, 'redis errors counted')

    redis = await s.heal(redis, admin)
    if (s.restarts) {
      admin.disconnect()
    }
    const recovered = performance.now()
    await waitFor(async () => await send(gw, 'test-key-tier2', closed) === 200, 10_000, 'fail-closed tier recovers')
    await waitFor(async () => {
      const before = await metric(gw, 'limiterDegraded', { mode: 'open' })
      return await send(gw, 'test-key-tier1', open) === 200 && await metric(gw, 'limiterDegraded', { mode: 'open' }) === before
    }, 10_000, 'open tier decided by Redis again')
    t.pass('open tier decided by Redis again')
    t.comment(`${s.name}: recovered ${(performance.now() - recovered).toFixed(0)} ms after Redis returned`)

    // Every request Redis saw is counted once: the requests it admitted, plus any whose reply came too late
    // (the script ran after the timeout; it is never sent again). A restarted Redis starts from zero.
    const check = new Redis(redis.url, { maxRetriesPerRequest: 0 })
    t.teardown(() => { check.disconnect() })
    const counted = await windowTotal(check, `${prefix}lim:{k:k1}:tier1:rpm`) + await windowTotal(check, `${prefix}lim:{k:k2}:tier2:rpm`)
    const viaRedis = open.ok + closed.ok - await metric(gw, 'limiterDegraded', { mode: 'open' })
    const late = await metric(gw, 'redisErrors', { op: 'acquire', reason: 'timeout' })
    if (s.restarts) {
      t.ok(counted >= 2 && counted <= viaRedis, `restarted Redis counts only what came after (${counted})`)
    } else {
      t.equal(counted, viaRedis + late, `Redis counted ${counted} = ${viaRedis} admitted by Redis + ${late} timed out`)
    }
  })
}
