/*
 * Client-IP spoofing: a caller must never choose its own address (and so its country, tier, rate bucket and audit
 * record). Each case goes through the whole data plane against the embedded GeoIP database and a real upstream,
 * and asserts the resolved address, its country, and whether the backend was reached.
 *
 * Real addresses of the embedded database (geo-whois-asn-country): 8.8.8.8 US, 81.2.69.142 GB, 152.206.0.1 CU,
 * 5.160.0.1 IR, 2a01:5ec0::1 IR, 2001:4860:4860::8888 US.
 */
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { gatewayWithUpstream } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'

const US = '8.8.8.8'
const GB = '81.2.69.142'
const CU = '152.206.0.1'
const IR6 = '2a01:5ec0::1'
const US6 = '2001:4860:4860::8888'
const PROXY = '10.0.0.1'
const PROXY6 = '2001:db8:ffff::1'

const EVERY_HEADER: Record<string, string> = {
  'x-forwarded-for': US,
  forwarded: `for=${US}`,
  'x-real-ip': US,
  'true-client-ip': US,
  'cf-connecting-ip': US,
  'cf-ipcountry': 'US',
  'x-client-ip': US,
  'x-cluster-client-ip': US,
  'fastly-client-ip': US,
  'x-original-forwarded-for': US,
  'forwarded-for': US,
  'x-forwarded': `for=${US}`,
  'client-ip': US,
  'x-appengine-country': 'US',
  'cloudfront-viewer-country': 'US'
}

interface Case {
  name: string
  peer: string
  headers: Record<string, string | string[]>
  ip: string
  country: string | null
  reaches: boolean
}

const cases: Case[] = [
  // untrusted peers: no forwarding header is believed, whatever it says
  { name: 'untrusted CU peer, X-Forwarded-For US', peer: CU, headers: { 'x-forwarded-for': US }, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted CU peer, X-Forwarded-For chain', peer: CU, headers: { 'x-forwarded-for': `${US}, ${GB}` }, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted CU peer, Forwarded', peer: CU, headers: { forwarded: `for=${US}` }, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted CU peer, X-Real-IP', peer: CU, headers: { 'x-real-ip': US }, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted CU peer, True-Client-IP', peer: CU, headers: { 'true-client-ip': US }, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted CU peer, CF-Connecting-IP', peer: CU, headers: { 'cf-connecting-ip': US }, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted CU peer, CF-IPCountry', peer: CU, headers: { 'cf-ipcountry': 'US' }, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted CU peer, every forwarding header at once', peer: CU, headers: EVERY_HEADER, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted IR IPv6 peer, every forwarding header', peer: IR6, headers: EVERY_HEADER, ip: IR6, country: 'IR', reaches: false },
  { name: 'untrusted mapped CU peer (::ffff:)', peer: `::ffff:${CU}`, headers: EVERY_HEADER, ip: CU, country: 'CU', reaches: false },
  { name: 'untrusted US peer claiming CU stays US', peer: US, headers: { 'x-forwarded-for': CU, forwarded: `for=${CU}`, 'cf-ipcountry': 'CU' }, ip: US, country: 'US', reaches: true },
  { name: 'untrusted peer claiming a trusted proxy address', peer: CU, headers: { 'x-forwarded-for': `${US}, ${PROXY}` }, ip: CU, country: 'CU', reaches: false },
  // trusted proxy: the right-most untrusted entry is the client
  { name: 'trusted proxy, CU client', peer: PROXY, headers: { 'x-forwarded-for': CU }, ip: CU, country: 'CU', reaches: false },
  { name: 'client-prepended US before the real CU', peer: PROXY, headers: { 'x-forwarded-for': `${US}, ${CU}` }, ip: CU, country: 'CU', reaches: false },
  { name: 'client-prepended chain before the real CU', peer: PROXY, headers: { 'x-forwarded-for': `${US}, ${GB}, ${CU}` }, ip: CU, country: 'CU', reaches: false },
  { name: 'client-prepended trusted-looking address', peer: PROXY, headers: { 'x-forwarded-for': `10.9.9.9, ${CU}` }, ip: CU, country: 'CU', reaches: false },
  { name: 'client-prepended CU before a real US client', peer: PROXY, headers: { 'x-forwarded-for': `${CU}, ${US}` }, ip: US, country: 'US', reaches: true },
  { name: 'two trusted hops', peer: PROXY, headers: { 'x-forwarded-for': `${US}, ${CU}, 10.2.2.2` }, ip: CU, country: 'CU', reaches: false },
  { name: 'multiple X-Forwarded-For lines', peer: PROXY, headers: { 'x-forwarded-for': [US, CU] }, ip: CU, country: 'CU', reaches: false },
  { name: 'multiple lines, client wrote a chain', peer: PROXY, headers: { 'x-forwarded-for': [`${US}, ${GB}`, CU] }, ip: CU, country: 'CU', reaches: false },
  { name: 'mapped trusted peer (dual-stack socket)', peer: `::ffff:${PROXY}`, headers: { 'x-forwarded-for': `${US}, ${CU}` }, ip: CU, country: 'CU', reaches: false },
  { name: 'trusted IPv6 proxy, US client', peer: PROXY6, headers: { 'x-forwarded-for': US }, ip: US, country: 'US', reaches: true },
  { name: 'trusted proxy also passes X-Real-IP / CF-IPCountry', peer: PROXY, headers: { 'x-forwarded-for': CU, 'x-real-ip': US, 'cf-ipcountry': 'US', 'true-client-ip': US }, ip: CU, country: 'CU', reaches: false },
  // RFC 7239 Forwarded
  { name: 'Forwarded, client-prepended', peer: PROXY, headers: { forwarded: `for=${US}, for=${CU}` }, ip: CU, country: 'CU', reaches: false },
  { name: 'Forwarded, quoted bracketed IPv6 with port', peer: PROXY, headers: { forwarded: `for="[${IR6}]:4711";proto=https` }, ip: IR6, country: 'IR', reaches: false },
  { name: 'Forwarded, US client with by= and proto=', peer: PROXY, headers: { forwarded: `for=${CU}, for=${US};by=${PROXY};proto=https` }, ip: US, country: 'US', reaches: true },
  { name: 'Forwarded, obfuscated identifier where we must trust', peer: PROXY, headers: { forwarded: `for=${US}, for=_hidden` }, ip: PROXY, country: null, reaches: false },
  { name: 'Forwarded, for=unknown where we must trust', peer: PROXY, headers: { forwarded: `for=${US}, for=unknown` }, ip: PROXY, country: null, reaches: false },
  { name: 'X-Forwarded-For and Forwarded disagree', peer: PROXY, headers: { 'x-forwarded-for': CU, forwarded: `for=${US}` }, ip: PROXY, country: null, reaches: false },
  // canonical forms
  { name: 'mapped IPv4 in XFF', peer: PROXY, headers: { 'x-forwarded-for': `${US}, ::ffff:${CU}` }, ip: CU, country: 'CU', reaches: false },
  { name: 'hex mapped IPv4 in XFF', peer: PROXY, headers: { 'x-forwarded-for': `${US}, ::ffff:98ce:0001` }, ip: CU, country: 'CU', reaches: false },
  { name: 'NAT64 IPv4 in XFF', peer: PROXY, headers: { 'x-forwarded-for': `${US}, 64:ff9b::98ce:1` }, ip: CU, country: 'CU', reaches: false },
  { name: 'IPv4 with port in XFF', peer: PROXY, headers: { 'x-forwarded-for': `${US}, ${CU}:5555` }, ip: CU, country: 'CU', reaches: false },
  { name: 'bracketed IPv6 with port in XFF', peer: PROXY, headers: { 'x-forwarded-for': `${US6}, [${IR6}]:443` }, ip: IR6, country: 'IR', reaches: false },
  { name: 'upper-case IPv6 in XFF', peer: PROXY, headers: { 'x-forwarded-for': IR6.toUpperCase() }, ip: IR6, country: 'IR', reaches: false },
  { name: 'zone id in XFF (link-local: no location)', peer: PROXY, headers: { 'x-forwarded-for': `${US}, fe80::1%eth0` }, ip: 'fe80::1', country: null, reaches: false },
  { name: 'US IPv6 client via trusted proxy', peer: PROXY, headers: { 'x-forwarded-for': `${CU}, ${US6}` }, ip: US6, country: 'US', reaches: true },
  // junk
  { name: 'junk right-most entry', peer: PROXY, headers: { 'x-forwarded-for': `${US}, not-an-ip` }, ip: PROXY, country: null, reaches: false },
  { name: 'junk left of the real client is skipped', peer: PROXY, headers: { 'x-forwarded-for': `garbage, ${US}` }, ip: US, country: 'US', reaches: true },
  { name: 'leading-zero (octal-looking) IPv4', peer: PROXY, headers: { 'x-forwarded-for': '008.008.008.008' }, ip: PROXY, country: null, reaches: false },
  { name: 'two addresses glued with a space', peer: PROXY, headers: { 'x-forwarded-for': `${US} ${CU}` }, ip: PROXY, country: null, reaches: false },
  { name: 'only trusted entries: an internal caller', peer: PROXY, headers: { 'x-forwarded-for': '10.5.5.5' }, ip: '10.5.5.5', country: null, reaches: false },
  { name: 'blank XFF from a trusted peer', peer: PROXY, headers: { 'x-forwarded-for': ' ' }, ip: PROXY, country: null, reaches: false },
  { name: 'an empty element where the client belongs is junk', peer: PROXY, headers: { 'x-forwarded-for': `${CU}, ,${US},` }, ip: PROXY, country: null, reaches: false },
  { name: 'an empty element left of the client is never read', peer: PROXY, headers: { 'x-forwarded-for': `${CU}, ,${US}` }, ip: US, country: 'US', reaches: true }
]

t.test('client IP spoofing table', async (t) => {
  t.ok(cases.length >= 30, `${cases.length} cases`)
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  }, {
    server: { trustedProxies: ['10.0.0.0/8', '2001:db8:ffff::/48'] },
    locations: { tiers: { embargoed: ['CU', 'IR', 'KP', 'SY', 'UA-43'], tier1: ['US', 'GB', 'DE'] }, default: 'tier2', unknown: 'embargoed', anonymizers: 'embargoed' }
  })
  const seen: Array<{ ip: string, country: string | null }> = []
  // onSend runs before the answer leaves (onResponse may come after inject resolves on a streamed answer)
  gw.app.addHook('onSend', async (request) => { seen.push({ ip: request.ctx.clientIp, country: request.ctx.geo?.country ?? null }) })

  for (const c of cases) {
    const before = up.requests.length
    seen.length = 0
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      remoteAddress: c.peer,
      headers: { authorization: 'Bearer test-key-tier1', ...c.headers },
      payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
    })
    t.same(seen[0], { ip: c.ip, country: c.country }, `${c.name}: resolved address and country`)
    t.equal(up.requests.length - before, c.reaches ? 1 : 0, `${c.name}: backend ${c.reaches ? 'reached' : 'not reached'}`)
    t.equal(res.statusCode, c.reaches ? 200 : 451, `${c.name}: status`)
    if (!c.reaches) t.equal(res.json().error.code, 'geo_restricted', `${c.name}: code`)
  }
})

t.test('several X-Forwarded-For lines on a real socket are one list, in order', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') }, {
    server: { trustedProxies: ['127.0.0.1/32', '::1/128'] },
    locations: { tiers: { embargoed: ['CU'], tier1: ['US'] }, default: 'tier2', unknown: 'embargoed' }
  })
  await gw.app.listen({ port: 0, host: '127.0.0.1' })
  const port = (gw.app.server.address() as AddressInfo).port
  const body = JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] })
  const auth: [string, string] = ['authorization', 'Bearer test-key-tier1']
  const cu = await rawRequest(port, '/v1/chat/completions', [auth, ['x-forwarded-for', US], ['x-forwarded-for', CU]], body)
  t.equal(cu.status, 451, 'the last line holds the right-most entry')
  t.equal(up.requests.length, 0)
  const us = await rawRequest(port, '/v1/chat/completions', [auth, ['x-forwarded-for', CU], ['X-Forwarded-For', US]], body)
  t.equal(us.status, 200, us.head + us.body)
  t.equal(up.requests.length, 1)
  const fwd = await rawRequest(port, '/v1/chat/completions', [auth, ['forwarded', `for=${US}`], ['forwarded', `for="${CU}:80"`]], body)
  t.equal(fwd.status, 451, 'Forwarded lines too')
  t.equal(up.requests.length, 1)
})
