import t from 'tap'
import { buildTestGateway, baseConfig } from '../helpers/gateway.js'

t.test('GET /admin/explain: admin and auditor, the live policy, OpenAI-style errors', async (t) => {
  const gw = await buildTestGateway(baseConfig('http://127.0.0.1:9', {
    locations: { tiers: { embargoed: ['CU'], tier1: ['US'] }, default: 'tier2', unknown: 'embargoed' }
  }))
  t.teardown(gw.close)
  const get = async (qs: string, token?: string): Promise<Awaited<ReturnType<typeof gw.admin.inject>>> =>
    await gw.admin.inject({ method: 'GET', url: `/admin/explain?${qs}`, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })

  t.equal((await get('ip=8.8.8.8&keyId=k1&model=llama-3.1-8b')).statusCode, 401)
  t.equal((await get('ip=8.8.8.8&keyId=k1&model=llama-3.1-8b', 'wrong')).statusCode, 401)
  for (const token of ['test-admin', 'test-auditor']) {
    const res = await get('ip=152.206.0.1&keyId=k1&model=llama-3.1-8b&endpoint=chat.completions', token)
    t.equal(res.statusCode, 200, token)
    const body = res.json()
    t.equal(body.client.ip, '152.206.0.1')
    t.equal(body.location.country, 'CU')
    t.equal(body.locationTier, 'embargoed')
    t.equal(body.keyTier, 'tier1')
    t.equal(body.rule, 'location:embargoed')
    t.equal(body.decision.status, 451)
    t.match(body.geo.databases[0].buildEpoch, /^\d{4}-/)
    t.same(body.model, { name: 'llama-3.1-8b', classification: 'EAR99', origin: null, servingRegions: ['US'] })
  }
  const tools = await get('ip=8.8.8.8&keyId=k2&model=llama-3.1-8b&tools=true&maxTokens=5000', 'test-auditor')
  t.equal(tools.json().rule, 'key-tier:tier2:capability:tools')
  const clamp = await get('ip=8.8.8.8&keyId=k2&model=llama-3.1-8b&maxTokens=5000', 'test-auditor')
  t.equal(clamp.json().decision.clampOutputTokens, 1024)

  const missing = await get('ip=8.8.8.8', 'test-admin')
  t.equal(missing.statusCode, 400)
  t.match(missing.json().error.message, /keyId, model/)
  t.equal((await get('ip=nope&keyId=k1&model=m', 'test-admin')).statusCode, 400)
  t.equal((await get('ip=8.8.8.8&keyId=k1&model=m&tools=maybe', 'test-admin')).statusCode, 400)
  t.equal((await get('ip=8.8.8.8&keyId=k1&model=m&maxTokens=-3', 'test-admin')).statusCode, 400)
  const noKey = await get('ip=8.8.8.8&keyId=ghost&model=m', 'test-admin')
  t.equal(noKey.statusCode, 404)
  t.equal(noKey.json().error.code, 'not_found')
})
