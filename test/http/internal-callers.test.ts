/* Local traffic is not evidence: internal callers are a location of their own, recorded as such. */
import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream, type TestGateway } from '../helpers/gateway.js'
import { readRecords } from '../../src/audit/read.js'
import type { InteractionRecord } from '../../src/audit/types.js'

const AUDITOR = { authorization: 'Bearer test-auditor' }
const US = '8.8.8.8'
const IR = '5.160.0.1'

async function metric (gw: TestGateway, name: string, label = ''): Promise<number> {
  const body = (await gw.admin.inject({ method: 'GET', url: '/metrics', headers: AUDITOR })).body
  return body.split('\n').filter((l) => l.startsWith(name) && l.includes(label)).reduce((a, l) => a + Number(l.split(' ').pop()), 0)
}

async function interactions (gw: TestGateway): Promise<InteractionRecord[]> {
  await gw.rt.audit.flush()
  const out: InteractionRecord[] = []
  for await (const { record } of readRecords(gw.rt.audit.dir)) if (record.kind === 'interaction') out.push(record)
  return out
}

const call = async (gw: TestGateway, ip: string): Promise<number> => (await gw.app.inject({
  method: 'POST', url: '/v1/chat/completions', remoteAddress: ip, headers: { authorization: 'Bearer test-key-tier1' },
  payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
})).statusCode

t.test('loopback, private, link-local and server.internalNetworks callers: location internal, not unknown, not cross-border', async (t) => {
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}') })
  const raw = baseConfig(up.url, { audit: { scope: 'all' } })
  raw.server = { trustedProxies: [], internalNetworks: ['100.64.0.0/10'] }
  ;(raw.locations as Record<string, unknown>).internal = 'tier1'
  const gw = await buildTestGateway(raw)
  t.teardown(async () => { await gw.close(); await up.close() })
  const unknownBefore = await metric(gw, 'geogate_geo_unknown_location_total')
  for (const ip of ['127.0.0.1', '10.1.2.3', '192.168.0.9', '169.254.1.1', '::1', '100.64.1.1']) t.equal(await call(gw, ip), 200, `${ip} gets the internal tier`)
  t.equal(await call(gw, US), 200)
  t.equal(await call(gw, IR), 451)
  const recs = await interactions(gw)
  t.equal(recs.length, 8)
  const internal = recs.slice(0, 6)
  t.same(internal.map((r) => [r.country, r.location, r.crossBorder, r.locationTier]), Array(6).fill([null, 'internal', false, 'tier1']),
    'country null, location internal, not crossing, the internal tier')
  t.same([recs[6]?.location, recs[6]?.crossBorder], ['geo', false], 'a US caller of a US backend')
  t.same([recs[7]?.location, recs[7]?.country, recs[7]?.crossBorder], ['geo', 'IR', true])
  t.equal(await metric(gw, 'geogate_geo_unknown_location_total') - unknownBefore, 0, 'internal callers are never unknown locations')
  t.equal(await metric(gw, 'geogate_cross_border_requests_total', 'country="internal"'), 0, 'nor cross-border')
  t.equal(await metric(gw, 'geogate_cross_border_requests_total', 'country="IR"'), 1)
})

t.test('cross-border only if the config says so; scope cross-border then keeps them', async (t) => {
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
  const raw = baseConfig(up.url)
  ;(raw.locations as Record<string, unknown>).internal = 'tier1'
  const gw = await buildTestGateway(raw)
  t.teardown(async () => { await gw.close(); await up.close() })
  t.equal(await call(gw, '127.0.0.1'), 200)
  t.same(await interactions(gw), [], 'scope cross-border: an internal caller is not kept by default')

  const on = baseConfig(up.url)
  ;(on.locations as Record<string, unknown>).internal = 'tier1'
  ;(on.locations as Record<string, unknown>).internalCrossBorder = true
  const gw2 = await buildTestGateway(on)
  t.teardown(async () => { await gw2.close() })
  t.equal(await call(gw2, '127.0.0.1'), 200)
  const recs = await interactions(gw2)
  t.same(recs.map((r) => [r.country, r.location, r.crossBorder]), [[null, 'internal', true]], 'locations.internalCrossBorder: true')
  t.equal(await metric(gw2, 'geogate_cross_border_requests_total', 'country="internal"'), 1)
})

t.test('server.internalNetworks is checked like trustedProxies', async (t) => {
  const { parseConfig, ConfigError } = await import('../../src/config/load.js')
  const raw = baseConfig()
  raw.server = { internalNetworks: ['10.0.0.0/33'] }
  const err = t.throws(() => parseConfig(raw)) as InstanceType<typeof ConfigError>
  t.same(err.issues.map((i) => `${i.path}: ${i.message}`), ['/server/internalNetworks/0: "10.0.0.0/33": prefix length must be at most 32'])
})
