import t from 'tap'
import { Redis } from 'ioredis'
import type { ServerResponse } from 'node:http'
import { buildTestGateway, baseConfig, startUpstream, type TestGateway, type Upstream } from '../helpers/gateway.js'
import { sharedRedisUrl, uniquePrefix, deletePrefix, waitFor } from '../helpers/redis.js'

const chat = (maxTokens = 100, content = 'hello'): Record<string, unknown> =>
  ({ model: 'llama-3.1-8b', max_tokens: maxTokens, messages: [{ role: 'user', content }] })

function tiers (limits: Record<string, number>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tier1: { models: ['*'], capabilities: ['chat', 'completions', 'embeddings', 'tools', 'streaming'], limits, failMode: 'open', ...extra },
    tier2: { models: ['llama-*'], capabilities: ['chat', 'embeddings', 'streaming'], maxOutputTokens: 1024 },
    embargoed: { deny: true }
  }
}

/** Upstream answering JSON with the usage given per request (prompt 3 + completion 7 by default). */
async function usageUpstream (completion = 7): Promise<Upstream> {
  // usage is read by the forward stage (JSON body / final stream chunk)
  return await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: completion, total_tokens: 3 + completion } }))
  })
}

for (const storeKind of ['memory', 'redis'] as const) {
  t.test(`${storeKind} store through the gateway`, async (t) => {
    const admin = storeKind === 'redis' ? new Redis(sharedRedisUrl()) : null
    t.teardown(() => { admin?.disconnect() })
    /** a gateway with a store of its own (a fresh key prefix on the shared Redis, removed afterwards) */
    async function gateway (up: Upstream, patch: Record<string, unknown>): Promise<TestGateway> {
      const prefix = uniquePrefix('limits')
      // generous timeout: these tests count, the fault tests time out
      const redis = storeKind === 'redis' ? { redis: { url: sharedRedisUrl(), keyPrefix: prefix, commandTimeoutMs: 2000 } } : {}
      const gw = await buildTestGateway(baseConfig(up.url, { ...redis, ...patch }))
      t.teardown(async () => {
        await gw.close()
        await up.close()
        if (admin !== null) await deletePrefix(admin, prefix)
      })
      return gw
    }
    const post = async (gw: TestGateway, body = chat(), key = 'test-key-tier1') =>
      await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { authorization: `Bearer ${key}` }, payload: body })

    t.test('headers on every limited response; remaining goes down; 429 with Retry-After', async (t) => {
      const gw = await gateway(await usageUpstream(), { tiers: tiers({ requestsPerMinute: 3, tokensPerMinute: 100_000 }) })
      const seen: number[] = []
      for (let i = 0; i < 3; i++) {
        const res = await post(gw)
        t.equal(res.statusCode, 200)
        t.equal(res.headers['x-ratelimit-limit-requests'], '3')
        t.equal(res.headers['x-ratelimit-limit-tokens'], '100000')
        t.match(res.headers['ratelimit-policy'], /"tier1-requests";q=3;w=60, "tier1-tokens";q=100000;w=60;qu="tokens"/)
        t.match(res.headers.ratelimit, /^"tier1-requests";r=\d+;t=\d+, "tier1-tokens";r=\d+;t=\d+$/)
        seen.push(Number(res.headers['x-ratelimit-remaining-requests']))
      }
      t.same(seen, [2, 1, 0])
      const refused = await post(gw)
      t.equal(refused.statusCode, 429)
      t.equal(refused.json().error.code, 'rate_limited')
      t.equal(refused.json().error.type, 'rate_limit_error')
      const retry = Number(refused.headers['retry-after'])
      t.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`)
      t.equal(refused.headers['x-ratelimit-remaining-requests'], '0')
      t.ok(refused.headers['ratelimit-policy'])
      const degraded = await gw.rt.metrics.limiterDegraded.get()
      t.same(degraded.values, [], 'every decision was made by the store')
    })

    t.test('tokens: reserved up front, refused before forwarding when the reservation does not fit', async (t) => {
      const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
      const gw = await gateway(up, { tiers: tiers({ tokensPerMinute: 1000 }) })
      const first = await post(gw, chat(500))
      t.equal(first.statusCode, 200)
      const reserved = 1000 - Number(first.headers['x-ratelimit-remaining-tokens'])
      t.ok(reserved >= 500, `reserved ${reserved}: prompt estimate + max_tokens`)
      const second = await post(gw, chat(1000 - reserved - (reserved - 500) + 1))
      t.equal(second.statusCode, 429, 'a reservation one token larger than what is left is refused')
      t.equal(up.requests.length, 1, 'and never forwarded')
      const third = await post(gw, chat(1000 - reserved - (reserved - 500)))
      t.equal(third.statusCode, 200, 'one that fits exactly is admitted (no usage reported: the reservation stands)')
      t.equal(third.headers['x-ratelimit-remaining-tokens'], '0')
    })

    t.test('tokens: a backend failure gives the reservation back', async (t) => {
      const up = await startUpstream((_req, res) => { res.statusCode = 503; res.end('busy') })
      const gw = await gateway(up, { tiers: tiers({ tokensPerMinute: 1000 }) })
      const a = await post(gw, chat(800))
      t.equal(a.statusCode, 503)
      const b = await post(gw, chat(800))
      t.equal(b.statusCode, 503, 'admitted again: the first 800+ were refunded')
      t.equal(b.headers['x-ratelimit-remaining-tokens'], a.headers['x-ratelimit-remaining-tokens'])
    })

    t.test('tokens: settle reconciles the reservation with the reported usage', async (t) => {
      const gw = await gateway(await usageUpstream(), { tiers: tiers({ tokensPerMinute: 1000, concurrency: 1 }) })
      const policy = gw.rt.policy.snapshot()
      const tier = policy.tiers.get('tier1')
      const principal = { keyId: 'k1', org: 'Org One', tier: 'tier1', verifiedEntity: false }
      const geo = gw.rt.geo.lookup('127.0.0.1')
      const shape = { endpoint: 'chat.completions' as const, forwardPath: '/v1/chat/completions', model: 'llama-3.1-8b', capabilities: [], maxOutputTokens: 600, choices: 1, promptTokens: 10, stream: true, }
      if (tier === undefined) throw new Error('no tier1')
      const req = { principal, tier, tierName: 'tier1', locationTier: 'tier1', geo, shape, estimatedTokens: 610 }
      const a = await gw.rt.limiter.acquire(req)
      t.equal(a.headers['x-ratelimit-remaining-tokens'], '390')
      t.notOk((await gw.rt.limiter.acquire(req)).allowed, 'the concurrency slot is held')
      await a.settle({ tokensIn: 10, tokensOut: 25 })
      await a.settle({ tokensIn: 10, tokensOut: 500 })
      const b = await gw.rt.limiter.acquire(req)
      t.ok(b.allowed, 'slot released, 575 tokens refunded')
      t.equal(b.headers['x-ratelimit-remaining-tokens'], String(1000 - 35 - 610), 'settle counted once')
      await b.settle({ tokensIn: 10, tokensOut: 700 })
      const c = await gw.rt.limiter.acquire({ ...req, estimatedTokens: 1 })
      t.equal(c.headers['x-ratelimit-remaining-tokens'], String(1000 - 35 - 710 - 1), 'an overrun past the reservation is charged')
      await c.settle(null)
    })

    t.test('concurrency: never more in flight than the limit, slots come back', async (t) => {
      let inFlight = 0
      let peak = 0
      const held: ServerResponse[] = []
      const up = await startUpstream((_req, res) => {
        inFlight++
        peak = Math.max(peak, inFlight)
        held.push(res)
      })
      const gw = await gateway(up, { tiers: tiers({ concurrency: 2 }) })
      const pending = Array.from({ length: 6 }, async () => await post(gw))
      await waitFor(() => held.length === 2, 5000, 'two requests upstream')
      const release = (): void => {
        for (const res of held.splice(0)) {
          inFlight--
          res.setHeader('content-type', 'application/json')
          res.end(JSON.stringify({ usage: { prompt_tokens: 1, completion_tokens: 1 } }))
        }
      }
      // the refused four answer while two are held
      const settled = await Promise.race([Promise.all(pending), new Promise<null>((resolve) => setTimeout(() => { resolve(null) }, 50))])
      t.equal(settled, null, 'held requests are still waiting')
      release()
      const results = await Promise.all(pending)
      t.equal(results.filter((r) => r.statusCode === 200).length, 2)
      t.equal(results.filter((r) => r.statusCode === 429).length, 4)
      t.equal(peak, 2)
      t.equal(results.find((r) => r.statusCode === 429)?.headers['retry-after'], '1')
      const again = post(gw)
      await waitFor(() => held.length === 1, 5000, 'a freed slot is usable')
      release()
      t.equal((await again).statusCode, 200)
    })

    t.test('a request running longer than the lease keeps its slot (leases are renewed)', async (t) => {
      const held: ServerResponse[] = []
      const up = await startUpstream((_req, res) => { held.push(res) })
      const gw = await gateway(up, { tiers: tiers({ concurrency: 1 }), limiter: { leaseTtlMs: 300 } })
      const long = post(gw)
      await waitFor(() => held.length === 1, 5000, 'the long request upstream')
      const until = performance.now() + 1200
      let probes = 0
      while (performance.now() < until) {
        t.equal((await post(gw)).statusCode, 429, 'slot still held')
        probes++
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      t.ok(probes >= 5, `${probes} probes over 4 lease lifetimes`)
      for (const res of held.splice(0)) { res.setHeader('content-type', 'application/json'); res.end('{}') }
      t.equal((await long).statusCode, 200)
      const next = post(gw)
      await waitFor(() => held.length === 1, 5000, 'the slot is free again')
      for (const res of held.splice(0)) res.end('{}')
      t.equal((await next).statusCode, 200)
    })

    t.test("the caller's location tier limits apply too", async (t) => {
      // 127.0.0.1 resolves to no country: locations.unknown is tier1; a tier2 key is limited by both tiers
      const gw = await gateway(await usageUpstream(), {
        tiers: {
          tier1: { models: ['*'], capabilities: ['chat'], limits: { requestsPerMinute: 2 }, failMode: 'open' },
          tier2: { models: ['llama-*'], capabilities: ['chat'], limits: { requestsPerMinute: 50 } },
          embargoed: { deny: true }
        }
      })
      const codes = []
      for (let i = 0; i < 3; i++) codes.push((await post(gw, chat(10), 'test-key-tier2')).statusCode)
      t.same(codes, [200, 200, 429])
    })

    t.test('location quotas: aggregate tokens per period across keys', async (t) => {
      const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
      const gw = await gateway(up, { quotas: [{ id: `q-${storeKind}`, location: 'tier1', tokens: 100, period: 'day' }] })
      const quotaLeft = (h: unknown): number => Number(/"quota-q-[a-z]+";r=(\d+)/.exec(String(h))?.[1])
      const a = await post(gw, chat(20))
      t.equal(a.statusCode, 200)
      t.match(a.headers['ratelimit-policy'], /"quota-q-[a-z]+";q=100;qu="tokens"/)
      const reservation = 100 - quotaLeft(a.headers.ratelimit)
      const b = await post(gw, chat(20), 'test-key-tier2')
      t.equal(b.statusCode, 200)
      t.equal(quotaLeft(b.headers.ratelimit), 100 - 2 * reservation, 'another key draws on the same location quota')
      const c = await post(gw, chat(100 - 2 * reservation))
      t.equal(c.statusCode, 429, 'a reservation larger than what is left of the quota')
      t.ok(Number(c.headers['retry-after']) > 0, 'retry when the period ends')
    })

    t.test('failed authentications per IP: 429 past the limit, good keys unaffected', async (t) => {
      const gw = await gateway(await usageUpstream(), { limiter: { authFailuresPerMinute: 3 } })
      const codes = []
      for (let i = 0; i < 5; i++) {
        const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { authorization: 'Bearer wrong' }, payload: chat() })
        codes.push(res.statusCode)
      }
      t.same(codes, [401, 401, 401, 429, 429])
      t.equal((await post(gw)).statusCode, 200)
    })

    t.test('admin plane: failed token attempts per IP get 429, health probes and good tokens pass', async (t) => {
      const gw = await gateway(await usageUpstream(), { limiter: { authFailuresPerMinute: 2 } })
      const codes = []
      for (let i = 0; i < 4; i++) codes.push((await gw.admin.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer guess' } })).statusCode)
      t.same(codes, [401, 401, 429, 429])
      const refused = await gw.admin.inject({ method: 'GET', url: '/metrics' })
      t.equal(refused.statusCode, 429, 'no token at all counts too')
      t.ok(Number(refused.headers['retry-after']) >= 1)
      t.equal(refused.json().error.code, 'rate_limited')
      t.equal((await gw.admin.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
      t.equal((await gw.admin.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer test-admin' } })).statusCode, 200)
    })
  })
}
