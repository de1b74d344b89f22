/*
 * Limiter benchmark (run on demand: node --import tsx test/bench/limits.ts [requests]).
 * Prints the limiter's added latency per request, p50/p99, memory store vs Redis store side by side, and the
 * Redis commands each request costs (from INFO commandstats of a redis-server this benchmark starts, so no
 * other client's commands are counted).
 */
import pino from 'pino'
import { Redis } from 'ioredis'
import { parseConfig } from '../../src/config/load.js'
import { createLimiter, type LimitRequest } from '../../src/limits/limiter.js'
import { createRedis } from '../../src/infra/redis.js'
import { Metrics } from '../../src/infra/metrics.js'
import { buildTestGateway, baseConfig, startUpstream, type TestGateway } from '../helpers/gateway.js'
import { startRedisServer } from '../helpers/redis.js'

const N = Number(process.argv[2] ?? 5000)
const log = pino({ level: 'silent' })
const limits = { requestsPerMinute: 10_000_000, tokensPerMinute: 1_000_000_000, concurrency: 1000 }

function pct (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN
}
const fmt = (ms: number): string => `${(ms * 1000).toFixed(0).padStart(6)} µs`

async function commandStats (admin: Redis): Promise<Map<string, number>> {
  const info = await admin.info('commandstats')
  const m = new Map<string, number>()
  for (const line of info.split('\n')) {
    const r = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim())
    if (r !== null) m.set(r[1] ?? '', Number(r[2]))
  }
  return m
}

async function direct (redisUrl: string | null): Promise<{ acquire: number[], total: number[] }> {
  const raw = baseConfig('http://127.0.0.1:9', {
    tiers: { tier1: { models: ['*'], capabilities: ['chat'], limits, failMode: 'open' }, tier2: { models: ['*'] }, embargoed: { deny: true } },
    ...(redisUrl !== null ? { redis: { url: redisUrl, keyPrefix: 'bench:', commandTimeoutMs: 1000 } } : {})
  })
  const config = parseConfig({ ...raw, audit: { dir: '/tmp/geogate-bench-audit' } })
  const redis = await createRedis(config.redis, log)
  if (redis !== null) await new Promise((resolve) => redis.once('ready', resolve))
  const limiter = createLimiter(config, log, { redis, metrics: new Metrics() })
  const tier = config.tiers.tier1
  if (tier === undefined) throw new Error('tier1')
  const req: LimitRequest = {
    principal: { keyId: 'k1', org: 'o', tier: 'tier1', verifiedEntity: false },
    tier,
    tierName: 'tier1',
    locationTier: 'tier1',
    geo: { country: 'US', subdivisions: [], registeredCountry: 'US', representedCountry: null, anonymizer: { vpn: false, tor: false, hosting: false, publicProxy: false, residentialProxy: false, any: false }, build: null },
    shape: { endpoint: 'chat.completions', forwardPath: '/v1/chat/completions', model: 'm', capabilities: ['chat'], maxOutputTokens: 256, choices: 1, promptTokens: 50, stream: false },
    estimatedTokens: 306
  }
  const acquire: number[] = []
  const total: number[] = []
  for (let i = 0; i < N + 200; i++) {
    const t0 = performance.now()
    const out = await limiter.acquire(req)
    const t1 = performance.now()
    await out.settle({ tokensIn: 50, tokensOut: 120 })
    const t2 = performance.now()
    if (!out.allowed || out.degraded) throw new Error(out.degraded ? 'decided without Redis' : 'refused')
    if (i >= 200) { acquire.push(t1 - t0); total.push(t2 - t0) }
  }
  await limiter.close()
  redis?.disconnect()
  return { acquire, total }
}

async function throughGateway (redisUrl: string | null, withLimits: boolean, upUrl: string): Promise<number[]> {
  const gw: TestGateway = await buildTestGateway(baseConfig(upUrl, {
    tiers: { tier1: { models: ['*'], capabilities: ['chat'], ...(withLimits ? { limits } : {}), failMode: 'open' }, tier2: { models: ['*'] }, embargoed: { deny: true } },
    ...(redisUrl !== null ? { redis: { url: redisUrl, keyPrefix: 'bench:', commandTimeoutMs: 1000 } } : {})
  }))
  const xs: number[] = []
  for (let i = 0; i < N + 200; i++) {
    const t0 = performance.now()
    const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { authorization: 'Bearer test-key-tier1' }, payload: { model: 'llama-3.1-8b', max_tokens: 256, messages: [{ role: 'user', content: 'hello there' }] } })
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
    if (i >= 200) xs.push(performance.now() - t0)
  }
  await gw.close()
  return xs
}

const server = await startRedisServer()
const admin = new Redis(server.url)
const up = await startUpstream((_req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end('{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}')
})
try {
  console.log(`limiter benchmark: ${N} sequential requests per case (after 200 warm-up), requests + tokens + concurrency limits`)
  const mem = await direct(null)
  await admin.config('RESETSTAT')
  const red = await direct(server.url)
  const stats = await commandStats(admin)
  console.log('\nlimiter alone (acquire before forwarding; settle after the response)')
  console.log(`                       ${'memory p50'.padStart(10)} ${'memory p99'.padStart(10)}   ${'redis p50'.padStart(10)} ${'redis p99'.padStart(10)}`)
  console.log(`  acquire              ${fmt(pct(mem.acquire, 0.5))} ${fmt(pct(mem.acquire, 0.99))}   ${fmt(pct(red.acquire, 0.5))} ${fmt(pct(red.acquire, 0.99))}`)
  console.log(`  acquire + settle     ${fmt(pct(mem.total, 0.5))} ${fmt(pct(mem.total, 0.99))}   ${fmt(pct(red.total, 0.5))} ${fmt(pct(red.total, 0.99))}`)
  const reqs = N + 200
  const calls = [...stats.entries()].filter(([k]) => k !== 'config' && k !== 'info' && k !== 'script').sort((a, b) => b[1] - a[1])
  const roundTrips = (stats.get('evalsha') ?? 0) + (stats.get('eval') ?? 0)
  console.log(`\nRedis per request: ${(roundTrips / reqs).toFixed(2)} round trips (EVALSHA: acquire + settle); commands executed, scripts' inner calls included:`)
  for (const [k, v] of calls) console.log(`  ${k.padEnd(18)} ${(v / reqs).toFixed(2)}`)
  console.log(`  ${'total'.padEnd(18)} ${(calls.reduce((a, [, v]) => a + v, 0) / reqs).toFixed(2)}`)

  console.log('\nthrough the gateway (app.inject, JSON upstream on loopback): limits on vs no limits configured')
  const base = await throughGateway(null, false, up.url)
  const gm = await throughGateway(null, true, up.url)
  const gr = await throughGateway(server.url, true, up.url)
  console.log(`  no limits            p50 ${fmt(pct(base, 0.5))}  p99 ${fmt(pct(base, 0.99))}`)
  console.log(`  memory store         p50 ${fmt(pct(gm, 0.5))}  p99 ${fmt(pct(gm, 0.99))}   added p50 ${fmt(pct(gm, 0.5) - pct(base, 0.5))}`)
  console.log(`  redis store          p50 ${fmt(pct(gr, 0.5))}  p99 ${fmt(pct(gr, 0.99))}   added p50 ${fmt(pct(gr, 0.5) - pct(base, 0.5))}`)
} finally {
  admin.disconnect()
  await up.close()
  await server.stop()
}
