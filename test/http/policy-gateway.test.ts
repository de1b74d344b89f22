/* The policy through the data plane: statuses, bodies, headers, what reaches the backend, /v1/models, shadow mode. */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../src/config/load.js'
import { buildTestGateway, baseConfig, startUpstream, type Upstream } from '../helpers/gateway.js'

const US = '8.8.8.8'
const GB = '81.2.69.142'
const CU = '152.206.0.1'
const BR = '200.160.2.3'

const chat = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], ...extra })

async function upstream (): Promise<Upstream> {
  return await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
}

const LOCATIONS = { tiers: { embargoed: ['CU', 'IR', 'KP', 'SY', 'UA-43'], tier1: ['US', 'GB', 'DE'] }, default: 'tier2', unknown: 'embargoed', anonymizers: 'embargoed' }

t.test('refusals: 451 with Link, 403 and 404 in OpenAI shape, nothing forwarded', async (t) => {
  const up = await upstream()
  const gw = await buildTestGateway(baseConfig(up.url, { locations: LOCATIONS, policy: { blockedByUrl: 'https://example.org/why' } }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const call = async (ip: string, key: string, body: Record<string, unknown>, url = '/v1/chat/completions'): Promise<Awaited<ReturnType<typeof gw.app.inject>>> =>
    await gw.app.inject({ method: 'POST', url, remoteAddress: ip, headers: { authorization: `Bearer ${key}` }, payload: body })

  const geo = await call(CU, 'test-key-tier1', chat())
  t.equal(geo.statusCode, 451)
  t.equal(geo.headers.link, '<https://example.org/why>; rel="blocked-by"')
  t.same(geo.json(), { error: { message: 'This service is not available in your location', type: 'permission_error', code: 'geo_restricted', param: null } })

  const model = await call(BR, 'test-key-tier1', chat({ model: 'frontier-1' }))
  t.equal(model.statusCode, 403)
  t.equal(model.json().error.code, 'capability_not_permitted')
  t.equal(model.json().error.message, 'The model `frontier-1` is not available from your location')

  const tools = await call(US, 'test-key-tier2', chat({ tools: [{ type: 'function', function: { name: 'f' } }] }))
  t.equal(tools.statusCode, 403)
  t.equal(tools.json().error.message, 'The capability `tools` is not permitted on your plan')

  const unknown = await call(US, 'test-key-tier1', chat({ model: 'gpt-99' }))
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().error.code, 'model_not_found')

  const bad = await call(US, 'test-key-tier1', chat({ max_tokens: '99999' }))
  t.equal(bad.statusCode, 400)
  t.equal(up.requests.length, 0, 'no refusal reached the backend')
})

t.test('clamp: the backend receives the bounded max_tokens', async (t) => {
  const up = await upstream()
  const gw = await buildTestGateway(baseConfig(up.url, { locations: LOCATIONS }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: US, headers: { authorization: 'Bearer test-key-tier2' }, payload: chat({ max_tokens: 5000 }) })
  t.equal(res.statusCode, 200)
  t.equal(JSON.parse(up.requests[0]?.body ?? '{}').max_tokens, 1024)
  await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: US, headers: { authorization: 'Bearer test-key-tier2' }, payload: chat() })
  t.equal(JSON.parse(up.requests[1]?.body ?? '{}').max_tokens, 1024, 'an unbounded request gets the bound')
  await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: US, headers: { authorization: 'Bearer test-key-tier1' }, payload: chat({ max_tokens: 5000 }) })
  t.equal(JSON.parse(up.requests[2]?.body ?? '{}').max_tokens, 5000, 'tier1 everywhere: untouched')
})

t.test('shadow mode: refusals are recorded on the decision and forwarded', async (t) => {
  const up = await upstream()
  const gw = await buildTestGateway(baseConfig(up.url, { locations: LOCATIONS, policy: { mode: 'shadow' } }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const decisions: Array<{ rule: string, allow: boolean, shadow: boolean } | null> = []
  gw.app.addHook('onSend', async (request) => {
    const d = request.ctx.decision
    decisions.push(d === null ? null : { rule: d.rule, allow: d.allow, shadow: d.shadow })
  })
  const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: CU, headers: { authorization: 'Bearer test-key-tier2' }, payload: chat({ max_tokens: 5000, tools: [{ type: 'function' }] }) })
  t.equal(res.statusCode, 200)
  t.equal(up.requests.length, 1)
  t.equal(JSON.parse(up.requests[0]?.body ?? '{}').max_tokens, 5000, 'nothing is enforced, not even a clamp')
  t.same(decisions[0], { rule: 'location:embargoed', allow: false, shadow: true })
  const list = await gw.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: CU, headers: { authorization: 'Bearer test-key-tier2' } })
  t.same(list.json().data.map((m: { id: string }) => m.id), ['frontier-1', 'llama-3.1-8b'])
  const unknown = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: US, headers: { authorization: 'Bearer test-key-tier1' }, payload: chat({ model: 'nope' }) })
  t.equal(unknown.statusCode, 404, 'an unknown model is still not found')
})

t.test('GET /v1/models lists what this caller may use from this place', async (t) => {
  const up = await upstream()
  const gw = await buildTestGateway(baseConfig(up.url, { locations: LOCATIONS }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const list = async (ip: string, key: string): Promise<Awaited<ReturnType<typeof gw.app.inject>>> =>
    await gw.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: ip, headers: { authorization: `Bearer ${key}` } })
  const ids = (r: Awaited<ReturnType<typeof gw.app.inject>>): string[] => r.json().data.map((m: { id: string }) => m.id)
  const full = await list(US, 'test-key-tier1')
  t.equal(full.statusCode, 200)
  t.equal(full.json().object, 'list')
  t.same(full.json().data[0], { id: 'frontier-1', object: 'model', created: 0, owned_by: 'geogate' })
  t.same(ids(full), ['frontier-1', 'llama-3.1-8b'])
  t.same(ids(await list(GB, 'test-key-tier2')), ['llama-3.1-8b'], 'key tier narrows')
  t.same(ids(await list(BR, 'test-key-tier1')), ['llama-3.1-8b'], 'location tier narrows')
  const cu = await list(CU, 'test-key-tier1')
  t.equal(cu.statusCode, 451)
  const one = await gw.app.inject({ method: 'GET', url: '/v1/models/llama-3.1-8b', remoteAddress: BR, headers: { authorization: 'Bearer test-key-tier1' } })
  t.same(one.json(), { id: 'llama-3.1-8b', object: 'model', created: 0, owned_by: 'geogate' })
  const hidden = await gw.app.inject({ method: 'GET', url: '/v1/models/frontier-1', remoteAddress: BR, headers: { authorization: 'Bearer test-key-tier1' } })
  t.equal(hidden.statusCode, 404, 'a model this caller may not use is not found')
  t.equal(hidden.json().error.code, 'model_not_found')
  t.equal(up.requests.length, 0, 'answered by the gateway')
})

t.test('identity: Bearer or x-api-key, never both different', async (t) => {
  const up = await upstream()
  const gw = await buildTestGateway(baseConfig(up.url, { locations: LOCATIONS }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const go = async (headers: Record<string, string>): Promise<number> =>
    (await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: US, headers, payload: chat() })).statusCode
  t.equal(await go({ 'x-api-key': 'test-key-tier1' }), 200)
  t.equal(await go({ authorization: 'bearer test-key-tier1' }), 200, 'scheme is case-insensitive')
  t.equal(await go({ authorization: 'Bearer test-key-tier1', 'x-api-key': 'test-key-tier1' }), 200)
  t.equal(await go({ authorization: 'Bearer test-key-tier1', 'x-api-key': 'test-key-tier2' }), 401)
  t.equal(await go({ authorization: 'Basic dGVzdA==' }), 401)
  t.equal(await go({ authorization: 'Bearer ' }), 401)
  t.equal(await go({ authorization: 'Bearer test-key-tier1x' }), 401)
  t.equal(up.requests.length, 3)
})

t.test('the shipped configuration: curl from localhost gets the internal tier', async (t) => {
  const shipped = structuredClone((await loadConfig(fileURLToPath(new URL('../../config/geogate.yaml', import.meta.url)), {})).config) as unknown as Record<string, unknown>
  const up = await upstream()
  const gw = await buildTestGateway({ ...shipped, redis: {}, backends: { 'mock-us': { url: up.url, region: 'US' } }, log: { level: 'silent' } })
  t.teardown(async () => { await gw.close(); await up.close() })
  const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: '127.0.0.1', headers: { authorization: 'Bearer gg-demo-tier1' }, payload: chat({ model: 'frontier-1' }) })
  t.equal(res.statusCode, 200)
  const cu = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: '127.0.0.1', headers: { authorization: 'Bearer gg-demo-tier1', 'x-forwarded-for': CU }, payload: chat() })
  t.equal(cu.statusCode, 451, 'the demo trusts loopback as a proxy, so it can show other countries')
})
