/*
 * Settles are batched off the request: the settles of one event-loop turn reach Redis as one script call, and
 * each request's effect is the same as settling alone (the contract suite holds the semantics; this holds the count).
 * A private redis-server, so the command statistics are this test's alone.
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisStore } from '../../src/limits/redis-store.js'
import type { CounterSpec } from '../../src/limits/store.js'
import { startRedisServer, windowTotal } from '../helpers/redis.js'

async function scriptCalls (r: Redis): Promise<number> {
  const info = await r.info('commandstats')
  let n = 0
  for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) n += Number(m[1])
  return n
}

/** A RedisStore on a redis-server of the test's own, closed with the test. */
async function privateStore (t: Test): Promise<{ redis: Redis, store: RedisStore }> {
  const server = await startRedisServer()
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  await new Promise<void>((resolve) => { redis.once('ready', () => { resolve() }) })
  const store = new RedisStore(redis, false)
  t.teardown(async () => { await store.close(); redis.disconnect(); await server.stop() })
  return { redis, store }
}

t.test('the settles of one turn go out as one call, each request settled exactly', async (t) => {
  const { redis, store } = await privateStore(t)
  // as the limiter does once Redis is ready: each script is then one EVALSHA (script-flush.test.ts: the fallback)
  await store.preload()

  const conc: CounterSpec = { kind: 'lease', key: 'b:{k:t}:conc', tag: 'k:t', limit: 50, cost: 1, ms: 30_000 }
  const tpm: CounterSpec = { kind: 'window', key: 'b:{k:t}:tpm', tag: 'k:t', limit: 100_000, cost: 100, ms: 60_000 }
  const leases = Array.from({ length: 40 }, (_v, i) => `lease-${i}`)
  const acquired = await Promise.all(leases.map(async (id) => await store.acquire([conc, tpm], id)))
  t.ok(acquired.every((a) => a.allowed))
  t.equal(await redis.zcard(conc.key), 40, '40 leases held')
  t.equal(await windowTotal(redis, tpm.key), 4000, '40 reservations of 100')

  const before = await scriptCalls(redis)
  // request i used 10 + i tokens of its 100 reserved
  await Promise.all(leases.map(async (id, i) => {
    await store.settle([{ counter: conc, mark: id, delta: 0 }, { counter: tpm, mark: acquired[i]?.states[1]?.mark ?? '', delta: 10 + i - 100 }], id)
  }))
  const after = await scriptCalls(redis)
  t.equal(after - before, 1, 'one script call for 40 settles')
  t.equal(await redis.zcard(conc.key), 0, 'every lease released')
  t.equal(await windowTotal(redis, tpm.key), leases.reduce((n, _id, i) => n + 10 + i, 0), 'every reservation reconciled to its usage')
})

t.test('a failed batch rejects every settle in it; close() waits for what is queued', async (t) => {
  const server = await startRedisServer()
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  await new Promise<void>((resolve) => { redis.once('ready', () => { resolve() }) })
  const store = new RedisStore(redis, false)
  t.teardown(async () => { redis.disconnect(); await server.stop() })

  const conc: CounterSpec = { kind: 'lease', key: 'f:{k:t}:conc', tag: 'k:t', limit: 5, cost: 1, ms: 30_000 }
  t.ok((await store.acquire([conc], 'x')).allowed)
  const queued = store.settle([{ counter: conc, mark: 'x', delta: 0 }], 'x')
  await store.close()
  await queued
  t.equal(await redis.zcard(conc.key), 0, 'a settle queued before close() is applied by the time close() resolves')

  t.ok((await store.acquire([conc], 'y')).allowed)
  await server.stop()
  const settles = [store.settle([{ counter: conc, mark: 'y', delta: 0 }], 'y'), store.settle([{ counter: conc, mark: 'z', delta: 0 }], 'z')]
  const results = await Promise.allSettled(settles)
  t.same(results.map((r) => r.status), ['rejected', 'rejected'], 'both settles of the failed batch reject (the limiter counts the error; the lease expires)')
})

t.test('settle items travel as one argument: an empty mark is sent as "-", a lease id with a space is refused', async (t) => {
  const { redis, store } = await privateStore(t)

  const conc: CounterSpec = { kind: 'lease', key: 'm:{k:t}:conc', tag: 'k:t', limit: 5, cost: 1, ms: 30_000 }
  const tpm: CounterSpec = { kind: 'window', key: 'm:{k:t}:tpm', tag: 'k:t', limit: 1000, cost: 100, ms: 60_000 }
  t.ok((await store.acquire([conc, tpm], 'a')).allowed)
  // no mark (a state the store never answered): the refund has no bucket to land in, the lease is still released
  await store.settle([{ counter: conc, mark: '', delta: 0 }, { counter: tpm, mark: '', delta: -50 }], 'a')
  t.equal(await redis.zcard(conc.key), 0, 'the lease is released')
  t.equal(await windowTotal(redis, tpm.key), 100, 'a refund without a mark changes nothing (as before: it names no bucket)')

  t.ok((await store.acquire([conc], 'b c')).allowed, 'acquire takes the lease id as an argument of its own')
  await t.rejects(store.settle([{ counter: conc, mark: 'b c', delta: 0 }], 'b c'), /cannot be sent as one field/, 'a field with a space is refused, not misread by the script')
  t.equal(await redis.zcard(conc.key), 1, 'nothing was applied for it')
})
