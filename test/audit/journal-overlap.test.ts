/*
 * The write-ahead journal line is written while the limits are checked (app.ts preHandler: beginRecord, then
 * applyLimits; forward() awaits the line): one wait for a request instead of the two in a row. Still nothing reaches
 * the backend before the line is durable and the limits have admitted the request, and a request the limits refuse
 * is recorded as refused, its line closed by that record.
 */
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { baseConfig, buildTestGateway, startUpstream, type TestGateway } from '../helpers/gateway.js'
import { startRedisServer, uniquePrefix, waitFor } from '../helpers/redis.js'
import { readRecords } from '../../src/audit/read.js'
import type { InteractionRecord } from '../../src/audit/types.js'
import type { FastifyRequest } from 'fastify'
import { newContext } from '../../src/http/context.js'
import { authenticate } from '../../src/http/identity.js'
import { describeRequest } from '../../src/policy/endpoint.js'
import { beginRecord } from '../../src/http/audit.js'

async function journalText (dir: string): Promise<string> {
  const name = (await readdir(dir)).find((f) => f.endsWith('.inflight.jsonl'))
  return name === undefined ? '' : await readFile(join(dir, name), 'utf8')
}

async function records (dir: string): Promise<Map<string, InteractionRecord>> {
  const recs = new Map<string, InteractionRecord>()
  for await (const { record } of readRecords(dir)) if (record.kind === 'interaction') recs.set(record.requestId, record)
  return recs
}

const chat = { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }

/** A chat completion as key k1 (tier1) with the given request id: its status. */
function chatCaller (gw: TestGateway): (id: string) => Promise<number> {
  return async (id) => (await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { authorization: 'Bearer test-key-tier1', 'x-request-id': id },
    payload: chat
  })).statusCode
}

t.test('Redis frozen mid-request: the journal line is durable before the limits answer; the backend is asked only after both', async (t) => {
  const redis = await startRedisServer()
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
  const gw = await buildTestGateway(baseConfig(up.url, {
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat'], limits: { requestsPerMinute: 1000, concurrency: 10 }, failMode: 'closed' },
      tier2: { models: ['llama-*'], capabilities: ['chat'] },
      embargoed: { deny: true }
    },
    // long enough that the frozen Redis is still being waited for when the journal is looked at
    redis: { url: redis.url, keyPrefix: uniquePrefix('journal-overlap'), commandTimeoutMs: 20_000 },
    audit: { scope: 'all' }
  }))
  t.teardown(async () => {
    redis.proc.kill('SIGCONT')
    await gw.close()
    await up.close()
    await redis.stop()
  })
  const call = chatCaller(gw)
  t.equal(await call('warm'), 200, 'served while Redis answers')
  await gw.rt.audit.flush()

  redis.proc.kill('SIGSTOP')
  const pending = call('frozen-1')
  const dir = gw.rt.audit.dir
  // the line is written although the limit check cannot have answered (Redis is stopped)
  await waitFor(async () => (await journalText(dir)).includes('"requestId":"frozen-1"'), 10_000, 'the journal line of frozen-1')
  t.notOk(up.requests.some((r) => r.headers['x-request-id'] === 'frozen-1'), 'not forwarded while its limits are undecided')
  t.equal(gw.rt.audit.stats().inFlight, 1, 'one interaction in flight')

  redis.proc.kill('SIGCONT')
  t.equal(await pending, 200, 'served once Redis answers')
  t.ok(up.requests.some((r) => r.headers['x-request-id'] === 'frozen-1'), 'then forwarded')
  await gw.rt.audit.flush()
  const recs = await records(dir)
  t.same([recs.get('frozen-1')?.decision, recs.get('frozen-1')?.outcome, recs.get('frozen-1')?.status, recs.get('frozen-1')?.degraded], ['allow', 'ok', 200, false])
  t.equal(gw.rt.audit.stats().inFlight, 0, 'its final record closed its line')
})

t.test('refused by its limits after its line was begun: recorded as the refusal it is, never forwarded, its line closed', async (t) => {
  const redis = await startRedisServer()
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
  const gw = await buildTestGateway(baseConfig(up.url, {
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat'], limits: { requestsPerMinute: 1 } },
      tier2: { models: ['llama-*'], capabilities: ['chat'] },
      embargoed: { deny: true }
    },
    redis: { url: redis.url, keyPrefix: uniquePrefix('journal-overlap'), commandTimeoutMs: 5_000 },
    audit: { scope: 'all' }
  }))
  t.teardown(async () => { await gw.close(); await up.close(); await redis.stop() })
  const call = chatCaller(gw)
  t.equal(await call('first'), 200)
  t.equal(await call('second'), 429, 'over the limit')
  t.same(up.requests.map((r) => r.headers['x-request-id']), ['first'], 'the refused request never reached the backend')
  await gw.rt.audit.flush()
  const recs = await records(gw.rt.audit.dir)
  const second = recs.get('second')
  t.same([second?.decision, second?.outcome, second?.status, second?.upstreamStatus], ['deny', 'refused', 429, null])
  t.match(second?.rule, /^limit/, 'the limit is the rule that refused it')
  t.same([recs.get('first')?.decision, recs.get('first')?.rule.startsWith('limit')], ['allow', false])
  t.equal(recs.size, 2, 'one record each')
  t.equal(gw.rt.audit.stats().inFlight, 0, 'no line left open')
  // Withdrawn: never written, or written and then ended, so a crash before its record is durable does not make an
  // `unknown` (possibly forwarded) record of a request that was refused.
  const lines = (await journalText(gw.rt.audit.dir)).split('\n').filter((l) => l.length > 0 && !l.startsWith('\0'))
  const begun = lines.findIndex((l) => l.includes('"requestId":"second"'))
  const ended = lines.findIndex((l) => l === '{"e":"second"}')
  t.ok(begun === -1 || (ended > begun), `the refused request's journal line is taken back or ended (begin at ${begun}, end at ${ended})`)
})

t.test('a caller gone before its journal line is begun: none is begun, nothing is left open', async (t) => {
  // A multipart body or a stored-object lookup is awaited before the line is begun; a caller hanging up meanwhile
  // has its interaction ended by the connection's close (ctx.audited): beginning a line after that would leave it
  // open until close() (and an `unknown` record of a request never forwarded).
  const up = await startUpstream((_req, res) => { res.end('{}') })
  const gw = await buildTestGateway(baseConfig(up.url, { audit: { scope: 'all' } }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const policy = gw.rt.policy.snapshot()
  const ctx = newContext('203.0.113.7', policy, gw.rt.config)
  ctx.principal = authenticate({ authorization: 'Bearer test-key-tier1' }, policy)
  ctx.shape = describeRequest('POST', '/v1/chat/completions', chat)
  const request = { id: 'gone-1', ctx } as unknown as FastifyRequest
  ctx.audited = true
  beginRecord(request, gw.rt)
  t.equal(ctx.journal, false, 'marked: no line')
  t.equal(gw.rt.audit.stats().inFlight, 0, 'nothing begun')
  // the same request still in progress does begin its line (the guard is the only difference)
  const live = { id: 'live-1', ctx: { ...ctx, audited: false, journal: null } } as unknown as FastifyRequest
  beginRecord(live, gw.rt)
  t.equal(gw.rt.audit.stats().inFlight, 1, 'a live request begins its line')
  gw.rt.audit.withdraw('live-1')
  t.equal(gw.rt.audit.stats().inFlight, 0)
  const r = await (live.ctx.journal as { result: Promise<{ durable: boolean }> }).result
  t.equal(r.durable, false, 'a withdrawn begin settles at once, not after journalTimeoutMs')
})
