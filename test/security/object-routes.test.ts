/*
 * Endpoints without a model in the body (GET/DELETE /v1/responses/{id}, …/cancel, fine-tuning jobs) go to the
 * backend that created the object, decided on the model it was created with; unknown ids are a clear 404 that
 * nothing is forwarded for and no interaction is recorded for. Real upstreams on port 0.
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { buildTestGateway, baseConfig, startUpstream, type Upstream, type TestGateway } from '../helpers/gateway.js'
import { observe, type Observed } from '../helpers/forward.js'
import { testRedis, uniquePrefix, deletePrefix } from '../helpers/ops.js'
import { createdId, createdIdFromEvent, createdIdFromHead } from '../../src/http/forward-routes.js'

/** A backend that creates responses `resp_<name><n>` (JSON, or SSE when asked) and answers for them. */
async function backend (name: string): Promise<Upstream> {
  let n = 0
  return await startUpstream((req, res, body) => {
    if (req.method === 'POST' && req.url === '/v1/responses') {
      const id = `resp_${name}${++n}`
      const stream = (JSON.parse(body) as { stream?: boolean }).stream === true
      if (stream) {
        res.setHeader('content-type', 'text/event-stream')
        res.write(`event: response.created\ndata: ${JSON.stringify({ type: 'response.created', sequence_number: 0, response: { id, object: 'response', status: 'in_progress' } })}\n\n`)
        res.end(`event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { id, usage: { input_tokens: 1, output_tokens: 1 } } })}\n\n`)
        return
      }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ id, object: 'response', status: 'completed', usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 } }))
      return
    }
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: (req.url ?? '').split('/')[3], object: 'response', served_by: name }))
  })
}

const KEY1 = { authorization: 'Bearer test-key-tier1' }
const KEY2 = { authorization: 'Bearer test-key-tier2' }

async function twoBackends (t: Test, extra: Record<string, unknown> = {}): Promise<{ gw: TestGateway, a: Upstream, b: Upstream, seen: Observed }> {
  const a = await backend('a')
  const b = await backend('b')
  const gw = await buildTestGateway(baseConfig(a.url, {
    backends: { 'gpu-a': { url: a.url, region: 'US' }, 'gpu-b': { url: b.url, region: 'US' } },
    models: { 'llama-3.1-8b': { backend: 'gpu-a' }, 'frontier-1': { backend: 'gpu-b' } },
    audit: { scope: 'all' },
    ...extra
  }))
  const seen = observe(gw)
  t.teardown(async () => { await gw.close(); await a.close(); await b.close() })
  return { gw, a, b, seen }
}

const ask = async (gw: TestGateway, method: 'GET' | 'POST' | 'DELETE', url: string, headers = KEY1, payload?: Record<string, unknown>): Promise<{ status: number, body: Record<string, unknown> }> => {
  const res = await gw.app.inject({ method, url, remoteAddress: '8.8.8.8', headers, ...(payload === undefined ? {} : { payload }) })
  return { status: res.statusCode, body: res.body.startsWith('{') ? res.json() as Record<string, unknown> : { raw: res.body } }
}

t.test('reading the id of a created object', async (t) => {
  t.equal(createdIdFromHead(Buffer.from('{"id": "resp_abc", "object": "response"')), 'resp_abc', 'from the head of the first chunk')
  t.equal(createdIdFromHead(Buffer.from('{"object": "response", "id": "resp_abc"}')), null, 'not first: left to the parse at the end')
  t.equal(createdIdFromHead(Buffer.from('{"id": "../etc"}')), null, 'not an id')
  t.equal(createdId({ id: 'resp_1' }), 'resp_1')
  t.equal(createdId({ id: 'a/b' }), null)
  t.equal(createdId(null), null)
  t.equal(createdIdFromEvent(JSON.stringify({ type: 'response.created', response: { id: 'resp_2' } })), 'resp_2')
  t.equal(createdIdFromEvent(JSON.stringify({ type: 'response.output_text.delta', delta: 'response.created' })), null)
})

t.test('two backends: a response is fetched, cancelled and deleted on the backend that created it', async (t) => {
  const { gw, a, b, seen } = await twoBackends(t)
  const created = await ask(gw, 'POST', '/v1/responses', KEY1, { model: 'frontier-1', input: 'hi' })
  t.equal(created.status, 200)
  t.equal(created.body.id, 'resp_b1', 'created on gpu-b (frontier-1)')
  for (const [method, url] of [['GET', '/v1/responses/resp_b1'], ['POST', '/v1/responses/resp_b1/cancel'], ['DELETE', '/v1/responses/resp_b1'], ['GET', '/v1/responses/resp_b1/input_items']] as const) {
    const before = b.requests.length
    const res = await ask(gw, method, url)
    t.equal(res.status, 200, `${method} ${url}`)
    t.equal(res.body.served_by, 'b', `${method} ${url}: answered by gpu-b`)
    t.equal(b.requests.length, before + 1)
    t.equal(b.requests.at(-1)?.url, url, 'forwarded as asked')
  }
  t.equal(a.requests.length, 0, 'gpu-a never asked')
  await seen.auditedCount(5)
  t.same(seen.audited.map((e) => [e.endpoint, e.model, e.decision, e.outcome]), new Array(5).fill(['responses', 'frontier-1', 'allow', 'ok']), 'recorded with the model that created it')

  const stream = await gw.app.inject({ method: 'POST', url: '/v1/responses', remoteAddress: '8.8.8.8', headers: KEY1, payload: { model: 'llama-3.1-8b', input: 'hi', stream: true } })
  t.match(stream.body, /resp_a1/)
  const fromStream = await ask(gw, 'GET', '/v1/responses/resp_a1')
  t.equal(fromStream.body.served_by, 'a', 'an id from a stream\'s response.created is remembered too')
})

t.test('two backends: unknown ids are a 404 before the policy; the object\'s model is what is decided', async (t) => {
  const { gw, a, b, seen } = await twoBackends(t)
  for (const [method, url] of [['GET', '/v1/responses/resp_nope'], ['POST', '/v1/responses/resp_nope/cancel'], ['DELETE', '/v1/responses/resp_nope'], ['GET', '/v1/fine_tuning/jobs'], ['GET', '/v1/fine_tuning/jobs/ftjob-1']] as const) {
    const res = await ask(gw, method, url)
    t.equal(res.status, 404, `${method} ${url}`)
    t.match(res.body, { error: { code: 'not_found', message: /id "resp_nope" was created through this gateway|several backends|ftjob-1/ } }, 'says why')
    t.notMatch(JSON.stringify(res.body), /The model ``/, 'not a model error')
  }
  t.equal(a.requests.length + b.requests.length, 0, 'nothing forwarded')
  t.equal(seen.audited.length, 0, 'no interaction recorded')

  await ask(gw, 'POST', '/v1/responses', KEY1, { model: 'frontier-1', input: 'hi' })
  const other = await ask(gw, 'GET', '/v1/responses/resp_b1', KEY2)
  t.equal(other.status, 403, 'a tier2 key (llama-* only) may not read a frontier-1 response')
  const smuggled = await ask(gw, 'POST', '/v1/responses/resp_b1/cancel', KEY2, { model: 'llama-3.1-8b' })
  t.equal(smuggled.status, 403, 'naming another model in the body changes nothing')
  t.equal(b.requests.length, 1, 'only the creation reached gpu-b')
})

t.test('one backend: requests naming an id go to it', async (t) => {
  const a = await backend('a')
  const gw = await buildTestGateway(baseConfig(a.url, { audit: { scope: 'all' } }))
  const seen = observe(gw)
  t.teardown(async () => { await gw.close(); await a.close() })
  const res = await ask(gw, 'GET', '/v1/responses/resp_made_elsewhere')
  t.equal(res.status, 200)
  t.equal(a.requests.at(-1)?.url, '/v1/responses/resp_made_elsewhere')
  await seen.auditedCount(1)
  t.match(seen.audited[0], { endpoint: 'responses', model: null, decision: 'allow', outcome: 'ok', status: 200 })
})

t.test('with Redis the route is shared by every replica, with a TTL', async (t) => {
  const redis = await testRedis()
  const prefix = uniquePrefix('objects')
  const extra = { redis: { url: redis.url, keyPrefix: prefix }, server: { trustedProxies: [], objectRoutesTtlSeconds: 3600 } }
  const one = await twoBackends(t, extra)
  const gw2 = await buildTestGateway(baseConfig(one.a.url, {
    backends: { 'gpu-a': { url: one.a.url, region: 'US' }, 'gpu-b': { url: one.b.url, region: 'US' } },
    models: { 'llama-3.1-8b': { backend: 'gpu-a' }, 'frontier-1': { backend: 'gpu-b' } },
    ...extra
  }))
  const r = new Redis(redis.url)
  t.teardown(async () => { r.disconnect(); await gw2.close(); await deletePrefix(redis.url, prefix); await redis.stop() })
  const created = await ask(one.gw, 'POST', '/v1/responses', KEY1, { model: 'frontier-1', input: 'hi' })
  const key = `${prefix}obj:responses:${String(created.body.id)}`
  const deadline = Date.now() + 2000
  while (await r.exists(key) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  const ttl = await r.pttl(key)
  t.ok(ttl > 3_500_000 && ttl <= 3_600_000, `stored with the TTL (${ttl} ms)`)
  const res = await ask(gw2, 'GET', `/v1/responses/${String(created.body.id)}`)
  t.equal(res.body.served_by, 'b', 'the other replica routes it to gpu-b')
})
