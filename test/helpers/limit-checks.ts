import type { Test } from 'tap'
import type { Redis, Cluster } from 'ioredis'
import type { ServerResponse } from 'node:http'
import { startUpstream, sha } from './gateway.js'
import { startReplicas } from './replicas.js'
import { windowTotal, deletePrefix, waitFor } from './redis.js'

const REQUESTS_LIMIT = 100
const TOKENS_LIMIT = 3000
const MAX_TOKENS = 200
const CONCURRENCY = 5
const LEASE_TTL_MS = 1500

/**
 * The limit checks several real gateway processes sharing one Redis (single node or Cluster) must pass:
 * exact request counts, token budgets overshot by at most one reservation, concurrency never above its
 * limit, and counters in Redis that match what was admitted.
 */
export async function replicaLimitChecks (t: Test, redis: Record<string, unknown>, admin: Redis | Cluster, prefix: string, replicas = 3): Promise<void> {
  let inFlight = 0
  let peak = 0
  let reportedTokens = 0
  let streamedTokens = 0
  let streams = 0
  const held: ServerResponse[] = []
  const up = await startUpstream((_req, res, body) => {
    const b = JSON.parse(body) as { user?: string, max_tokens?: number, stream?: boolean, stream_options?: { include_usage?: boolean } }
    if (b.stream === true) {
      // an SSE stream whose usage comes only in the final chunk, as OpenAI-compatible servers send it
      const out = 1 + (streams++ % 40)
      streamedTokens += 4 + out
      res.setHeader('content-type', 'text/event-stream')
      for (let i = 0; i < 3; i++) res.write(`data: ${JSON.stringify({ id: 's', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'tok ' } }] })}\n\n`)
      if (b.stream_options?.include_usage === true) res.write(`data: ${JSON.stringify({ id: 's', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 4, completion_tokens: out, total_tokens: 4 + out } })}\n\n`)
      res.end('data: [DONE]\n\n')
      return
    }
    const usage = { prompt_tokens: 2, completion_tokens: b.max_tokens ?? 0, total_tokens: 2 + (b.max_tokens ?? 0) }
    const answer = (): void => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ id: 'c', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' } }], usage }))
    }
    if (b.user === 'tok') reportedTokens += usage.total_tokens
    if (b.user === 'hold') { held.push(res); return }
    if (b.user !== 'conc') { answer(); return }
    inFlight++
    peak = Math.max(peak, inFlight)
    // hold concurrency requests a little so they overlap; the limit is what keeps them apart
    setTimeout(() => { inFlight--; answer() }, 40)
  })
  const caps = ['chat', 'streaming']
  const config = {
    backends: { gpu: { url: up.url, region: 'US' } },
    models: { 'llama-3.1-8b': { backend: 'gpu', classification: 'EAR99' } },
    locations: { tiers: { embargoed: ['KP'] }, default: 'open', unknown: 'open' },
    tiers: {
      open: { models: ['*'], capabilities: caps },
      req: { models: ['*'], capabilities: caps, limits: { requestsPerMinute: REQUESTS_LIMIT }, failMode: 'closed' },
      tok: { models: ['*'], capabilities: caps, limits: { tokensPerMinute: TOKENS_LIMIT }, failMode: 'closed' },
      conc: { models: ['*'], capabilities: caps, limits: { concurrency: CONCURRENCY }, failMode: 'closed' },
      stream: { models: ['*'], capabilities: caps, limits: { tokensPerMinute: 1_000_000 }, failMode: 'closed' },
      hold: { models: ['*'], capabilities: caps, limits: { concurrency: 2 }, failMode: 'closed' },
      embargoed: { deny: true }
    },
    keys: ['req', 'tok', 'conc', 'stream', 'hold'].map((k) => ({ id: `k-${k}`, sha256: sha(`key-${k}`), org: 'Org', tier: k })),
    // a loaded CI machine can stall a process past the 100 ms default; these checks are about counting,
    // the fault tests are about timeouts
    redis: { commandTimeoutMs: 2000, ...redis, keyPrefix: prefix },
    limiter: { leaseTtlMs: LEASE_TTL_MS },
    log: { level: 'info' }
  }
  const gw = await startReplicas(replicas, config)
  t.teardown(async () => {
    await gw.stop()
    await up.close()
    await deletePrefix(admin, prefix)
  })
  let rr = 0
  const post = async (key: string, user: string, maxTokens = 10, stream = false, replica?: number): Promise<Response> => {
    const url = gw.urls[replica ?? rr++ % gw.urls.length] ?? ''
    return await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama-3.1-8b', user, max_tokens: maxTokens, stream, messages: [{ role: 'user', content: 'hi' }] })
    })
  }
  const statuses = async (rs: Response[]): Promise<number[]> => await Promise.all(rs.map(async (r) => { await r.arrayBuffer(); return r.status }))

  t.test(`${replicas} replicas, ${REQUESTS_LIMIT * 2 + 40} concurrent requests, limit ${REQUESTS_LIMIT}: exactly ${REQUESTS_LIMIT} admitted`, async (t) => {
    const codes = await statuses(await Promise.all(Array.from({ length: REQUESTS_LIMIT * 2 + 40 }, async () => await post('key-req', 'req'))))
    t.equal(codes.filter((c) => c === 200).length, REQUESTS_LIMIT, 'admitted')
    t.equal(codes.filter((c) => c === 429).length, REQUESTS_LIMIT + 40, 'refused with 429')
    t.equal(await windowTotal(admin, `${prefix}lim:{k:k-req}:req:rpm`), REQUESTS_LIMIT, 'counted once each in Redis')
  })

  t.test(`tokens: ${TOKENS_LIMIT}/min overshoots by at most one reservation`, async (t) => {
    const probe = await post('key-tok', 'tok', MAX_TOKENS)
    await probe.arrayBuffer()
    t.equal(probe.status, 200)
    const reservation = TOKENS_LIMIT - Number(probe.headers.get('x-ratelimit-remaining-tokens'))
    t.ok(reservation >= MAX_TOKENS, `reservation ${reservation}`)
    const codes = await statuses(await Promise.all(Array.from({ length: 60 }, async () => await post('key-tok', 'tok', MAX_TOKENS))))
    const admitted = codes.filter((c) => c === 200).length + 1
    t.ok(admitted >= Math.floor(TOKENS_LIMIT / (reservation + 2)), `${admitted} admitted: the budget was used`)
    t.ok(reportedTokens <= TOKENS_LIMIT + reservation, `backend reported ${reportedTokens} tokens used ≤ ${TOKENS_LIMIT} + ${reservation}`)
    await waitFor(async () => await windowTotal(admin, `${prefix}lim:{k:k-tok}:tok:tpm`) <= TOKENS_LIMIT + reservation, 5000, 'settled token counter')
    t.pass('the Redis token counter stays within one reservation of the limit')
  })

  t.test(`concurrency ${CONCURRENCY}: never more in flight upstream, no lease left behind`, async (t) => {
    const codes = await statuses(await Promise.all(Array.from({ length: 60 }, async () => await post('key-conc', 'conc'))))
    t.ok(peak <= CONCURRENCY, `peak in flight upstream ${peak}`)
    t.ok(peak >= 2, 'requests did overlap')
    t.ok(codes.filter((c) => c === 200).length >= CONCURRENCY)
    t.same([...new Set(codes)].sort(), codes.includes(429) ? [200, 429] : [200])
    await waitFor(async () => await admin.zcard(`${prefix}lim:{k:k-conc}:conc:conc`) === 0, 5000, 'leases released')
    t.pass('every lease was released')
  })

  t.test('streamed usage reconciles: the token counter ends at exactly what the streams reported', async (t) => {
    const rs = await Promise.all(Array.from({ length: 30 }, async () => await post('key-stream', 'stream', 300, true)))
    const bodies = await Promise.all(rs.map(async (r) => await r.text()))
    t.same(rs.map((r) => r.status), Array.from({ length: 30 }, () => 200))
    t.ok(bodies.every((b) => b.includes('data: [DONE]')), 'every stream passed through to its end')
    const key = `${prefix}lim:{k:k-stream}:stream:tpm`
    await waitFor(async () => await windowTotal(admin, key) === streamedTokens, 5000, `token counter = ${streamedTokens}`)
    t.equal(await windowTotal(admin, key), streamedTokens, `reservations of 30 × (prompt + 300) reconciled to the ${streamedTokens} tokens reported`)
  })

  // last: it kills a replica
  t.test('a replica that dies holding concurrency slots leaks none: its leases expire', async (t) => {
    const dying = [post('key-hold', 'hold', 10, false, 0), post('key-hold', 'hold', 10, false, 0)].map(async (p) => await p.then((r) => r.status, () => 0))
    await waitFor(() => held.length === 2, 5000, 'two requests held upstream')
    const busy = await post('key-hold', 'hold-probe', 10, false, 1)
    await busy.arrayBuffer()
    t.equal(busy.status, 429, 'both slots taken')
    const killedAt = performance.now()
    gw.procs[0]?.kill('SIGKILL')
    await Promise.all(dying)
    const stillHeld = await post('key-hold', 'hold-probe', 10, false, 1)
    await stillHeld.arrayBuffer()
    t.equal(stillHeld.status, 429, 'right after the crash the slots are still leased')
    let freedAfter = 0
    await waitFor(async () => {
      const r = await post('key-hold', 'hold-probe', 10, false, 1)
      await r.arrayBuffer()
      freedAfter = performance.now() - killedAt
      return r.status === 200
    }, LEASE_TTL_MS * 4, 'slots freed by lease expiry')
    t.ok(freedAfter < LEASE_TTL_MS * 2, `a slot came back ${freedAfter.toFixed(0)} ms after the crash (lease ttl ${LEASE_TTL_MS} ms)`)
    for (const res of held.splice(0)) res.destroy()
  })
}
