/*
 * The acquires of one event-loop turn leave for Redis in one write (the store corks the connection until the turn's
 * check phase). Replies must still reach the request that sent each command, and a connection lost while commands
 * sit corked must fail them, never leave a request waiting. A private redis-server.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisStore } from '../../src/limits/redis-store.js'
import type { CounterSpec } from '../../src/limits/store.js'
import { startRedisServer, windowTotal } from '../helpers/redis.js'

async function connect (url: string): Promise<Redis> {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, retryStrategy: () => null })
  await new Promise<void>((resolve) => { redis.once('ready', () => { resolve() }) })
  return redis
}

const rpm = (i: number, limit: number): CounterSpec => ({ kind: 'window', key: `c:{k:${i}}:rpm`, tag: `k:${i}`, limit, cost: 1, ms: 60_000 })

t.test('acquires sent in one turn: each answer is its own command\'s, each counted once', async (t) => {
  const server = await startRedisServer()
  const redis = await connect(server.url)
  const admin = new Redis(server.url)
  const store = new RedisStore(redis, false)
  t.teardown(async () => { await store.close(); redis.disconnect(); admin.disconnect(); await server.stop() })
  await store.rawReady // raw commands (the corked ones) from here on

  const n = 200
  // every call in this one synchronous loop: all corked together, answered in order
  const results = await Promise.all(Array.from({ length: n }, async (_, i) => await store.acquire([rpm(i + 1, i + 1), { ...rpm(i + 1, 5), key: `c:{k:${i + 1}}:conc`, kind: 'lease' }], `lease-${i}`)))
  results.forEach((r, i) => {
    if (!r.allowed || r.states[0]?.limit !== i + 1 || r.states[0]?.remaining !== i || r.states[1]?.limit !== 5) t.fail(`request ${i} got another's answer: ${JSON.stringify(r)}`)
  })
  t.equal(results.filter((r) => r.allowed).length, n, 'every request admitted with its own limits')
  const totals = await Promise.all(Array.from({ length: n }, async (_, i) => await windowTotal(admin, `c:{k:${i + 1}}:rpm`)))
  t.same(new Set(totals), new Set([1]), 'each counted exactly once')
  t.equal(await admin.zcard('c:{k:7}:conc'), 1, 'its lease held under its own id')
  t.same(await admin.zrange('c:{k:7}:conc', 0, -1), ['lease-6'])

  // the one refused in a burst is the one over its limit: request 1's limit is 1, already used
  const again = await Promise.all([store.acquire([rpm(1, 1)], 'x'), store.acquire([rpm(2, 2)], 'y')])
  t.same(again.map((r) => r.allowed), [false, true])
})

t.test('the connection lost while commands are corked: each fails at once, none hangs, none counted', async (t) => {
  const server = await startRedisServer()
  const admin = new Redis(server.url)
  t.teardown(async () => { admin.disconnect(); await server.stop() })

  // the socket destroyed in the same turn: the corked bytes never leave; every call fails, nothing is counted
  const b = await connect(server.url)
  const sb = new RedisStore(b, false)
  await sb.rawReady
  const cut = Array.from({ length: 5 }, async (_, i) => await sb.acquire([rpm(i + 11, 10)], `c-${i}`))
  b.stream.destroy()
  const c = await Promise.allSettled(cut)
  t.same(c.map((s) => s.status), Array(5).fill('rejected'), 'every call rejected')
  t.ok(c.every((s) => s.status === 'rejected' && s.reason instanceof Error), (c[0] as PromiseRejectedResult).reason?.message)
  t.same(await Promise.all([11, 12, 13, 14, 15].map(async (i) => await windowTotal(admin, `c:{k:${i}}:rpm`))), [0, 0, 0, 0, 0], 'none reached Redis')
  b.disconnect()
})
