/*
 * Junk is unknown. From a trusted peer, forwarding headers that do not name the client (empty elements, blank
 * headers, unparsable entries, X-Forwarded-For and Forwarded disagreeing) make the location unknown — never the
 * proxy's own location. Here the proxy is internal and `locations.internal` is a permissive tier, so taking the
 * proxy's location would answer 200; the unknown tier refuses (451).
 */
import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'

const PROXY = '10.0.0.1'
const US = '8.8.8.8'

// [name, headers, the address recorded: the last hop we trust (the peer unless a trusted hop is named)]
const cases: Array<[string, Record<string, string | string[]>, string?]> = [
  ['X-Forwarded-For: ,,,', { 'x-forwarded-for': ',,,' }],
  ['X-Forwarded-For: , ', { 'x-forwarded-for': ', ' }],
  ['blank X-Forwarded-For', { 'x-forwarded-for': ' ' }],
  ['empty X-Forwarded-For', { 'x-forwarded-for': '' }],
  ['trailing empty element after the client', { 'x-forwarded-for': `${US},` }],
  ['empty element between the client and a trusted hop', { 'x-forwarded-for': `${US}, , 10.2.2.2` }, '10.2.2.2'],
  ['two blank X-Forwarded-For lines', { 'x-forwarded-for': ['', ''] }],
  ['unparsable right-most entry', { 'x-forwarded-for': `${US}, 1.2.3` }],
  ['obfuscated right-most entry', { 'x-forwarded-for': `${US}, _proxy` }],
  ['Forwarded: ,,', { forwarded: ',,' }],
  ['Forwarded without for=', { forwarded: 'proto=https' }],
  ['Forwarded: for=""', { forwarded: 'for=""' }],
  ['Forwarded, trailing empty element', { forwarded: `for=${US},` }],
  ['X-Forwarded-For and Forwarded disagree', { 'x-forwarded-for': US, forwarded: 'for=81.2.69.142' }],
  ['X-Forwarded-For junk, Forwarded fine', { 'x-forwarded-for': ',,', forwarded: `for=${US}` }]
]

t.test('junk from a trusted, internal proxy: unknown location (451), never the proxy\'s internal tier', async (t) => {
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
  const gw = await buildTestGateway(baseConfig(up.url, {
    server: { trustedProxies: ['10.0.0.0/8'] },
    locations: { tiers: { embargoed: ['CU'], tier1: ['US'] }, default: 'tier2', unknown: 'embargoed', internal: 'tier1' }
  }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const seen: Array<{ ip: string, located: boolean | null, tier: string | null }> = []
  gw.app.addHook('onSend', async (request) => { seen.push({ ip: request.ctx.clientIp, located: request.ctx.client?.located ?? null, tier: request.ctx.decision?.locationTier ?? null }) })
  const send = async (headers: Record<string, string | string[]>): Promise<number> => (await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    remoteAddress: PROXY,
    headers: { authorization: 'Bearer test-key-tier1', ...headers },
    payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
  })).statusCode

  t.equal(await send({}), 200, 'no forwarding header: the proxy itself is the (internal) caller')
  t.equal(await send({ 'x-forwarded-for': US }), 200, 'a good header: the US client')
  t.equal(await send({ 'x-forwarded-for': `, ${US}` }), 200, 'an empty element left of the client is never read')
  const reached = up.requests.length
  for (const [name, headers, ip = PROXY] of cases) {
    seen.length = 0
    t.equal(await send(headers), 451, `${name}: 451`)
    t.same(seen[0], { ip, located: false, tier: 'embargoed' }, `${name}: recorded as ${ip}, location unknown`)
  }
  t.equal(up.requests.length, reached, 'none reached the backend')
})
