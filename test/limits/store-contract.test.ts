/*
 * The one contract every limit store passes (STYLE point 4): the same cases run against the in-memory store
 * and the Redis store (Lua scripts on the machine's Redis, under a key prefix of their own).
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { MemoryStore } from '../../src/limits/memory-store.js'
import { RedisStore } from '../../src/limits/redis-store.js'
import { periodOf, type CounterSpec, type LimitStore } from '../../src/limits/store.js'
import { sharedRedisUrl, uniquePrefix, deletePrefix, waitFor } from '../helpers/redis.js'

interface Subject { store: LimitStore, prefix: string }

const window = (s: Subject, name: string, limit: number, cost = 1): CounterSpec =>
  ({ kind: 'window', key: `${s.prefix}{k:t}:${name}`, tag: 'k:t', limit, cost, ms: 60_000 })
const lease = (s: Subject, name: string, limit: number, ms = 30_000): CounterSpec =>
  ({ kind: 'lease', key: `${s.prefix}{k:t}:${name}`, tag: 'k:t', limit, cost: 1, ms })
const quota = (s: Subject, name: string, limit: number, cost: number, period: 'hour' | 'day' | 'month' = 'day'): CounterSpec =>
  ({ kind: 'period', key: `${s.prefix}{k:t}:${name}`, tag: 'k:t', limit, cost, ms: 0, period })

function contract (name: string, make: () => Promise<Subject>): void {
  t.test(`${name} store`, async (t) => {
    const s = await make()
    t.teardown(async () => { await s.store.close() })

    t.test('a window admits exactly its limit under concurrency, remaining counts down', async (t) => {
      const c = window(s, 'rpm-exact', 100)
      const results = await Promise.all(Array.from({ length: 250 }, async () => await s.store.acquire([c], randomUUID())))
      const admitted = results.filter((r) => r.allowed)
      t.equal(admitted.length, 100, 'exactly the limit admitted')
      t.same(admitted.map((r) => r.states[0]?.remaining).sort((a, b) => (a ?? 0) - (b ?? 0)), Array.from({ length: 100 }, (_v, i) => i), 'remaining 99 … 0, each once')
      const refused = results.find((r) => !r.allowed)
      t.equal(refused?.refused, 0)
      t.ok((refused?.retryAfterMs ?? 0) > 0 && (refused?.retryAfterMs ?? 0) <= 60_000, 'retry after the oldest bucket leaves the window')
      t.equal(refused?.states[0]?.remaining, 0)
    })

    t.test('all or nothing: a refusal charges no other counter', async (t) => {
      const rpm = window(s, 'aon-rpm', 10)
      const tpm = window(s, 'aon-tpm', 50, 60)
      const r = await s.store.acquire([rpm, tpm], randomUUID())
      t.notOk(r.allowed)
      t.equal(r.refused, 1, 'the token counter refused')
      t.equal(r.retryAfterMs, 60_000, 'a request larger than the whole limit waits a whole window')
      const ok = await s.store.acquire([rpm, { ...tpm, cost: 50 }], randomUUID())
      t.ok(ok.allowed)
      t.equal(ok.states[0]?.remaining, 9, 'the refused request was not counted')
      t.equal(ok.states[1]?.remaining, 0)
      const full = await s.store.acquire([rpm, { ...tpm, cost: 0 }], randomUUID())
      t.notOk(full.allowed, 'an exhausted token budget refuses even a zero estimate')
    })

    t.test('token reservations reconcile: refunds and overruns', async (t) => {
      const tpm = window(s, 'reconcile', 100, 40)
      const a = await s.store.acquire([tpm], 'a')
      const b = await s.store.acquire([tpm], 'b')
      t.ok(a.allowed && b.allowed)
      t.notOk((await s.store.acquire([tpm], 'c')).allowed, '40 + 40 + 40 > 100')
      await s.store.settle([{ counter: tpm, mark: a.states[0]?.mark ?? '', delta: 10 - 40 }], 'a')
      const c = await s.store.acquire([tpm], 'c')
      t.ok(c.allowed, 'the refund made room')
      t.equal(c.states[0]?.remaining, 100 - 10 - 40 - 40)
      await s.store.settle([{ counter: tpm, mark: b.states[0]?.mark ?? '', delta: 25 }], 'b')
      const d = await s.store.acquire([{ ...tpm, cost: 1 }], 'd')
      t.notOk(d.allowed, 'an overrun is charged: 10 + 65 + 40 > 99')
      t.equal(d.states[0]?.remaining, 0)
    })

    t.test('an overrun whose bucket is gone lands in the current bucket', async (t) => {
      const tpm = window(s, 'overrun-gone', 100, 10)
      const a = await s.store.acquire([tpm], 'a')
      t.ok(a.allowed)
      await s.store.settle([{ counter: tpm, mark: '1', delta: 30 }], 'a')
      const b = await s.store.acquire([{ ...tpm, cost: 1 }], 'b')
      t.equal(b.states[0]?.remaining, 100 - 10 - 30 - 1)
    })

    t.test('concurrency leases: limit holds, release frees one slot once', async (t) => {
      const c = lease(s, 'conc', 2)
      const ids = ['l1', 'l2', 'l3', 'l4']
      const rs = await Promise.all(ids.map(async (id) => await s.store.acquire([c], id)))
      t.equal(rs.filter((r) => r.allowed).length, 2)
      const held = ids.filter((_id, i) => rs[i]?.allowed === true)
      t.equal(rs.find((r) => !r.allowed)?.retryAfterMs, 1000)
      await s.store.settle([{ counter: c, mark: '', delta: 0 }], held[0] ?? '')
      await s.store.settle([{ counter: c, mark: '', delta: 0 }], held[0] ?? '')
      const again = await Promise.all(['l5', 'l6'].map(async (id) => await s.store.acquire([c], id)))
      t.equal(again.filter((r) => r.allowed).length, 1, 'releasing the same lease twice frees one slot')
    })

    t.test('leases expire unless renewed (a dead replica leaks no slot)', async (t) => {
      const c = lease(s, 'expire', 1, 300)
      t.ok((await s.store.acquire([c], 'dead')).allowed)
      t.notOk((await s.store.acquire([c], 'x')).allowed)
      await waitFor(async () => (await s.store.acquire([c], 'next')).allowed, 3000, 'lease expiry')
      // 'next' holds the slot now; renewing keeps it past several ttls
      const until = Date.now() + 900
      while (Date.now() < until) {
        await s.store.renew([c], 'next')
        t.notOk((await s.store.acquire([c], 'other')).allowed, 'renewed lease still held')
        await new Promise((resolve) => setTimeout(resolve, 60))
      }
      await s.store.renew([c], 'never-held')
      await s.store.settle([{ counter: c, mark: '', delta: 0 }], 'next')
      t.ok((await s.store.acquire([c], 'after')).allowed, 'renewing an unknown lease did not create one')
    })

    t.test('calendar quotas: period id from the store clock, refusal until the period ends', async (t) => {
      for (const period of ['hour', 'day', 'month'] as const) {
        const q = quota(s, `quota-${period}`, 100, 60, period)
        const a = await s.store.acquire([q], 'a')
        t.ok(a.allowed)
        t.equal(a.states[0]?.mark, periodOf(period, Date.now()).id, `${period} id agrees with UTC calendar`)
        t.equal(a.states[0]?.remaining, 40)
        const b = await s.store.acquire([q], 'b')
        t.notOk(b.allowed)
        const left = periodOf(period, Date.now()).endMs - Date.now()
        t.ok(Math.abs(b.retryAfterMs - left) < 5000, `${period}: retry at the end of the period`)
        await s.store.settle([{ counter: q, mark: a.states[0]?.mark ?? '', delta: -30 }], 'a')
        const c = await s.store.acquire([{ ...q, cost: 70 }], 'c')
        t.ok(c.allowed, 'refund returned to the period')
        t.equal(c.states[0]?.remaining, 0)
      }
    })

    t.test('a mixed plan: requests, tokens, lease and quota in one step', async (t) => {
      const plan = [window(s, 'mix-rpm', 3), window(s, 'mix-tpm', 1000, 100), lease(s, 'mix-conc', 5), quota(s, 'mix-q', 250, 100)]
      const rs = []
      for (let i = 0; i < 4; i++) rs.push(await s.store.acquire(plan, `m${i}`))
      t.same(rs.map((r) => r.allowed), [true, true, false, false])
      t.equal(rs[2]?.refused, 3, 'the quota refused the third')
      t.same(rs[1]?.states.map((x) => x.remaining), [1, 800, 3, 50])
    })
  })
}

contract('memory', async () => ({ store: new MemoryStore(), prefix: 'mem:' }))

contract('redis', async () => {
  const client = new Redis(sharedRedisUrl(), { enableOfflineQueue: true, maxRetriesPerRequest: 0 })
  const prefix = uniquePrefix('contract')
  t.teardown(async () => {
    await deletePrefix(client, prefix)
    client.disconnect()
  })
  return { store: new RedisStore(client, false), prefix }
})
