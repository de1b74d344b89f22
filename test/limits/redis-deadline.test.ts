/*
 * commandTimeoutMs judges Redis, not the gateway's own event loop. When the loop is held up (a burst of requests
 * handled in one long turn, a GC pause), expired timers run before the socket reads that came in meanwhile: a limit
 * check whose reply is already there must not be taken for a slow Redis (that trips the breaker: decisions by
 * failMode for limiter.breakerMs, 503 on a failMode closed tier), nor one corked until the turn's end and sent late.
 * A Redis that stops answering still fails the check within the timeout. A private redis-server.
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { RedisStore } from '../../src/limits/redis-store.js'
import type { CounterSpec } from '../../src/limits/store.js'
import { startRedisServer } from '../helpers/redis.js'

const TIMEOUT_MS = 50

/** the event loop held, as a saturated gateway holds it */
function holdLoop (ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) { /* busy */ }
}

const nextTurn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

const rpm = (i: number): CounterSpec => ({ kind: 'window', key: `c:{k:${i}}:rpm`, tag: `k:${i}`, limit: 100, cost: 1, ms: 60_000 })

async function store (t: Test): Promise<{ store: RedisStore, pid: number }> {
  const server = await startRedisServer()
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, retryStrategy: () => null, commandTimeout: TIMEOUT_MS })
  await new Promise<void>((resolve) => { redis.once('ready', () => { resolve() }) })
  const s = new RedisStore(redis, false)
  t.teardown(async () => {
    process.kill(server.proc.pid ?? 0, 'SIGCONT')
    await s.close()
    redis.disconnect()
    await server.stop()
  })
  await s.rawReady
  await s.preload()
  return { store: s, pid: server.proc.pid ?? 0 }
}

t.test('a reply that came while the event loop was held past commandTimeoutMs is the answer, not a timeout', async (t) => {
  const { store: s } = await store(t)
  const pending = s.acquire([rpm(1)], 'lease-1')
  // sent in this turn's check phase; the reply arrives while the loop is held
  await nextTurn()
  holdLoop(4 * TIMEOUT_MS)
  const r = await pending
  t.equal(r.allowed, true)
  t.equal(r.states[0]?.remaining, 99)
})

t.test('a check corked while the loop was held: its time starts when it is sent', async (t) => {
  const { store: s } = await store(t)
  const pending = s.acquire([rpm(2)], 'lease-2')
  holdLoop(4 * TIMEOUT_MS)
  const r = await pending
  t.equal(r.allowed, true)
})

t.test('a lease renewed while the loop was held past the timeout is renewed, not a failure', async (t) => {
  const { store: s } = await store(t)
  const lease: CounterSpec = { kind: 'lease', key: 'c:{k:4}:conc', tag: 'k:4', limit: 2, cost: 1, ms: 60_000 }
  t.equal((await s.acquire([lease], 'lease-4')).allowed, true)
  const pending = s.renew([lease], 'lease-4')
  await nextTurn()
  holdLoop(4 * TIMEOUT_MS)
  await t.resolves(pending)
})

t.test('a renew sent while the turn\'s checks hold the socket corked: its time starts when the bytes leave', async (t) => {
  const { store: s } = await store(t)
  const lease: CounterSpec = { kind: 'lease', key: 'c:{k:5}:conc', tag: 'k:5', limit: 2, cost: 1, ms: 60_000 }
  t.equal((await s.acquire([lease], 'lease-5')).allowed, true)
  // an acquire corks the connection for the turn; the renew's bytes wait behind it while the loop is held
  const check = s.acquire([rpm(6)], 'lease-6')
  const renew = s.renew([lease], 'lease-5')
  holdLoop(4 * TIMEOUT_MS)
  await t.resolves(renew)
  t.equal((await check).allowed, true)
})

t.test('a Redis that stops answering still fails the check within the timeout', async (t) => {
  const { store: s, pid } = await store(t)
  process.kill(pid, 'SIGSTOP')
  const t0 = Date.now()
  await t.rejects(s.acquire([rpm(3)], 'lease-3'), /timed out/)
  const waited = Date.now() - t0
  t.ok(waited >= TIMEOUT_MS - 5 && waited < TIMEOUT_MS + 500, `failed after ${waited} ms (commandTimeoutMs ${TIMEOUT_MS})`)
})
