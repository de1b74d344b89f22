/*
 * One address parser (net/address.ts) for every stage: the client-IP stage, the geo lookup and the audit log's
 * truncation agree on every spelling of an address. The geo lookup used to lack the NAT64 mapping the client-IP
 * stage makes (64:ff9b::808:808 was looked up as IPv6, found nowhere, and truncated as 64:ff9b:0::/48), and the audit
 * truncation read ::ffff:8.8.8.8 as the IPv6 network 0:0:0::/48.
 */
import t from 'tap'
import pino from 'pino'
import { canonicalIp, parseIp } from '../../src/net/address.js'
import { lookupAddress } from '../../src/geo/address.js'
import { auditIp } from '../../src/audit/ip.js'
import { GeoService, embeddedDatabasePath } from '../../src/geo/service.js'
import { ANONYMIZER_TRAITS, ANONYMIZER_KINDS, DEFAULT_ANONYMIZER_KINDS, anonymizerFlagList, noAnonymizer } from '../../src/core/anonymizers.js'

t.test('NAT64 and IPv4-mapped spellings are the IPv4 address in geo too (regression)', async (t) => {
  t.match(lookupAddress('64:ff9b::808:808'), { ip: '8.8.8.8', version: 4 })
  t.match(lookupAddress('64:ff9b::8.8.8.8'), { ip: '8.8.8.8', version: 4 })
  t.match(lookupAddress('::ffff:8.8.8.8'), { ip: '8.8.8.8', version: 4 })
  t.match(lookupAddress('64:ff9b:1::808:808'), { version: 6 }, 'the local-use NAT64 prefix 64:ff9b:1::/48 is not the well-known one')
  const geo = await GeoService.open({ paths: [embeddedDatabasePath()], maxAgeDays: 100000, failClosedWhenStale: false, watch: false, log: pino({ level: 'silent' }) })
  t.teardown(async () => { await geo.close() })
  t.equal(geo.lookup('8.8.8.8').country, 'US')
  for (const s of ['64:ff9b::808:808', '64:ff9b::8.8.8.8', '::ffff:8.8.8.8', '::ffff:808:808', '[::ffff:8.8.8.8]']) {
    t.equal(geo.lookup(s).country, 'US', `${s}: looked up as 8.8.8.8`)
  }
  t.equal(geo.lookup('8.8.8.8:53').unknownReason, 'invalid_ip', 'a lookup names an address, not an address and port')
})

t.test('client IP, geo and audit agree on every spelling', async (t) => {
  const spellings = [
    '8.8.8.8', '::ffff:8.8.8.8', '::FFFF:0808:0808', '64:ff9b::808:808', '[::ffff:8.8.8.8]',
    '2001:4860:4860::8888', '2001:4860:4860:0:0:0:0:8888', '2001:4860:4860::8888'.toUpperCase(), '[2001:4860:4860::8888]',
    'fe80::1%eth0', '::1', '10.1.2.3'
  ]
  for (const s of spellings) {
    const canonical = canonicalIp(s)
    t.not(canonical, null, s)
    t.equal(lookupAddress(s)?.ip, canonical, `${s}: geo looks up ${String(canonical)}`)
    t.equal(auditIp(s, 'truncated', undefined), auditIp(canonical ?? '', 'truncated', undefined), `${s}: audit truncates as ${String(canonical)}`)
  }
  t.equal(auditIp('::ffff:8.8.8.8', 'truncated', undefined), '8.8.8.0/24', 'a mapped IPv4 caller truncates to its /24')
  t.equal(parseIp('1.2.3.4:80', { ports: false }), null)
  t.match(parseIp('1.2.3.4:80'), { text: '1.2.3.4' })
})

t.test('anonymizer traits: one table, every external spelling as before', async (t) => {
  t.same(ANONYMIZER_TRAITS.map((x) => [x.flag, x.config, x.metric, x.mmdb]), [
    ['vpn', 'vpn', 'vpn', 'is_anonymous_vpn'],
    ['tor', 'tor', 'tor', 'is_tor_exit_node'],
    ['hosting', 'hosting', 'hosting', 'is_hosting_provider'],
    ['publicProxy', 'public-proxy', 'public_proxy', 'is_public_proxy'],
    ['residentialProxy', 'residential-proxy', 'residential_proxy', 'is_residential_proxy']
  ])
  t.same(ANONYMIZER_KINDS, ['vpn', 'tor', 'public-proxy', 'residential-proxy', 'hosting'], 'the schema enum, in its order')
  t.same(DEFAULT_ANONYMIZER_KINDS, ['vpn', 'tor', 'public-proxy', 'residential-proxy'])
  t.same(anonymizerFlagList({ ...noAnonymizer(), any: true, residentialProxy: true, vpn: true, hosting: true }), ['vpn', 'hosting', 'residentialProxy'], 'audit record order')
})
