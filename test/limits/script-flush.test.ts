/*
 * The scripts go out as EVALSHA; a Redis that lost them (restarted, SCRIPT FLUSH) answers NOSCRIPT, the script did
 * not run, and the store sends it whole (EVAL): every call still counts exactly once. A private redis-server.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisStore } from '../../src/limits/redis-store.js'
import type { CounterSpec } from '../../src/limits/store.js'
import { startRedisServer, windowTotal } from '../helpers/redis.js'

async function calls (r: Redis, cmd: 'evalsha' | 'eval'): Promise<number> {
  const m = (await r.info('commandstats')).match(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`))
  return Number(m?.[1] ?? 0)
}

t.test('after SCRIPT FLUSH: acquire, settle and renew fall back to EVAL once, and count exactly', async (t) => {
  const server = await startRedisServer()
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  await new Promise<void>((resolve) => { redis.once('ready', () => { resolve() }) })
  const admin = new Redis(server.url)
  const store = new RedisStore(redis, false)
  t.teardown(async () => { await store.close(); redis.disconnect(); admin.disconnect(); await server.stop() })

  const rpm: CounterSpec = { kind: 'window', key: 's:{k:t}:rpm', tag: 'k:t', limit: 100, cost: 1, ms: 60_000 }
  const conc: CounterSpec = { kind: 'lease', key: 's:{k:t}:conc', tag: 'k:t', limit: 5, cost: 1, ms: 30_000 }
  t.ok((await store.acquire([rpm, conc], 'a')).allowed, 'first acquire (the script is not loaded yet)')
  await admin.script('FLUSH')
  const evalsBefore = await calls(admin, 'eval')
  const r = await store.acquire([rpm, conc], 'b')
  t.ok(r.allowed)
  t.equal(await windowTotal(admin, rpm.key), 2, 'two requests counted: the NOSCRIPT call did not count, the EVAL did')
  t.equal(await admin.zcard(conc.key), 2, 'two leases held')
  t.equal(await calls(admin, 'eval') - evalsBefore, 1, 'one EVAL after the flush')
  await store.renew([conc], 'b')
  await store.settle([{ counter: conc, mark: 'a', delta: 0 }], 'a')
  await store.settle([{ counter: conc, mark: 'b', delta: 0 }], 'b')
  t.equal(await admin.zcard(conc.key), 0, 'both leases released')
  const shaBefore = await calls(admin, 'evalsha')
  t.ok((await store.acquire([rpm], 'c')).allowed)
  t.equal(await calls(admin, 'evalsha') - shaBefore, 1, 'once loaded again, one EVALSHA per call')
  t.equal(await windowTotal(admin, rpm.key), 3)
})
