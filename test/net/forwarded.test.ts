import t from 'tap'
import { canonicalIp, isInternalIp, cidrIssues } from '../../src/net/address.js'
import { forwardedFor, ClientIpResolver } from '../../src/net/forwarded.js'
import { parseConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/config/load.js'
import { baseConfig } from '../helpers/gateway.js'

t.test('canonicalIp: one spelling per address', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['8.8.8.8', '8.8.8.8'],
    [' 8.8.8.8 ', '8.8.8.8'],
    ['8.8.8.8:443', '8.8.8.8'],
    ['8.8.8.8:99999', null],
    ['08.8.8.8', null],
    ['8.8.8', null],
    ['8.8.8.256', null],
    ['0x8.8.8.8', null],
    ['::ffff:8.8.8.8', '8.8.8.8'],
    ['::FFFF:8.8.8.8', '8.8.8.8'],
    ['::ffff:0808:0808', '8.8.8.8'],
    ['0:0:0:0:0:ffff:808:808', '8.8.8.8'],
    ['[::ffff:8.8.8.8]:8080', '8.8.8.8'],
    ['64:ff9b::808:808', '8.8.8.8'],
    ['64:ff9b::8.8.8.8', '8.8.8.8'],
    ['2001:4860:4860::8888', '2001:4860:4860::8888'],
    ['2001:4860:4860:0:0:0:0:8888', '2001:4860:4860::8888'],
    ['2001:4860:4860:0000:0000:0000:0000:8888', '2001:4860:4860::8888'],
    ['2001:4860:4860::8888'.toUpperCase(), '2001:4860:4860::8888'],
    ['[2001:4860:4860::8888]', '2001:4860:4860::8888'],
    ['[2001:4860:4860::8888]:443', '2001:4860:4860::8888'],
    ['[2001:4860:4860::8888]:', null],
    ['[2001:4860:4860::8888', null],
    ['[8.8.8.8]', null],
    ['fe80::1%eth0', 'fe80::1'],
    ['fe80::1%25eth0', 'fe80::1'],
    ['[fe80::1%eth0]:80', 'fe80::1'],
    ['fe80::1%', null],
    ['8.8.8.8%eth0', null],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['2001:0:0:1::1', '2001:0:0:1::1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['1:2:3:4:5:6:7:8:9', null],
    ['1::2::3', null],
    ['::', '::'],
    ['::1', '::1'],
    ['unknown', null],
    ['_hidden', null],
    ['', null],
    ['1.2.3.4, 5.6.7.8', null],
    ['localhost', null]
  ]
  for (const [raw, want] of cases) t.equal(canonicalIp(raw), want, JSON.stringify(raw))
})

t.test('isInternalIp', async (t) => {
  for (const ip of ['127.0.0.1', '127.255.0.9', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.1.1', '::1', 'fc00::1', 'fd12:3456::1', 'fe80::1']) t.ok(isInternalIp(ip), ip)
  for (const ip of ['8.8.8.8', '172.32.0.1', '172.15.0.1', '100.64.0.1', '192.169.0.1', '2001:4860:4860::8888', '::2', 'fec0::1']) t.notOk(isInternalIp(ip), ip)
})

t.test('trustedProxies: bad entries are configuration errors, with their path', async (t) => {
  t.same(cidrIssues(['10.0.0.0/8', '::1/128', '192.168.0.1', '::ffff:10.0.0.0/104']), [])
  const bad = cidrIssues(['10.0.0.0/33', 'nope', '10.0.0.0/x', '[::1]/128', '::ffff:10.0.0.0/64', '10.0.0.1:80/32', '10.0.0.0/8/8', '::1/129'])
  t.same(bad.map((i) => i.index), [0, 1, 2, 3, 4, 5, 6, 7])
  try {
    parseConfig(baseConfig('http://127.0.0.1:9', { server: { trustedProxies: ['10.0.0.0/8', '300.0.0.0/8'] } }))
    t.fail('should throw')
  } catch (err) {
    t.ok(err instanceof ConfigError)
    t.match((err as ConfigError).issues, [{ path: '/server/trustedProxies/1' }])
  }
})

t.test('forwardedFor: RFC 7239 elements', async (t) => {
  t.same(forwardedFor('for=192.0.2.60;proto=http;by=203.0.113.43'), ['192.0.2.60'])
  t.same(forwardedFor('for=192.0.2.43, for=198.51.100.17'), ['192.0.2.43', '198.51.100.17'])
  t.same(forwardedFor('For="[2001:db8:cafe::17]:4711"'), ['[2001:db8:cafe::17]:4711'])
  t.same(forwardedFor('for="a\\"b"'), ['a"b'])
  t.same(forwardedFor('proto=https'), ['!junk'], 'an element without for= is junk in its place')
  t.same(forwardedFor('for=1.1.1.1;for=2.2.2.2'), ['!junk'], 'two for= in one element is junk')
  t.same(forwardedFor('for="1.1.1.1, for=2.2.2.2"'), ['1.1.1.1, for=2.2.2.2'], 'commas inside quotes do not split')
  t.same(forwardedFor('for=unknown, for=_hidden'), ['unknown', '_hidden'])
  t.same(forwardedFor(', ,for=1.1.1.1'), ['!junk', '!junk', '1.1.1.1'], 'empty elements are junk in their place')
})

t.test('resolver: the right-most untrusted hop', async (t) => {
  const r = new ClientIpResolver(['10.0.0.0/8', '2001:db8:ffff::/48'])
  const cases: Array<[string, Record<string, string | string[]>, string, boolean, string]> = [
    ['8.8.8.8', { 'x-forwarded-for': '1.1.1.1' }, '8.8.8.8', true, 'socket'],
    ['10.0.0.1', {}, '10.0.0.1', true, 'socket'],
    ['10.0.0.1', { 'x-forwarded-for': '1.1.1.1' }, '1.1.1.1', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '9.9.9.9, 1.1.1.1' }, '1.1.1.1', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '9.9.9.9, 1.1.1.1, 10.2.2.2' }, '1.1.1.1', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '10.3.3.3, 10.2.2.2' }, '10.3.3.3', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': 'junk, 1.1.1.1' }, '1.1.1.1', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '1.1.1.1, junk' }, '10.0.0.1', false, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '1.1.1.1, junk, 10.2.2.2' }, '10.2.2.2', false, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': ['9.9.9.9', '1.1.1.1'] }, '1.1.1.1', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '1.1.1.1,,' }, '10.0.0.1', false, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': ',,,' }, '10.0.0.1', false, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': ' ' }, '10.0.0.1', false, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '' }, '10.0.0.1', false, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': ', 1.1.1.1' }, '1.1.1.1', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '1.1.1.1, , 10.2.2.2' }, '10.2.2.2', false, 'x-forwarded-for'],
    ['10.0.0.1', { forwarded: 'for=1.1.1.1, ' }, '10.0.0.1', false, 'forwarded'],
    ['10.0.0.1', { forwarded: '' }, '10.0.0.1', false, 'forwarded'],
    ['10.0.0.1', { forwarded: 'for=9.9.9.9, for=1.1.1.1' }, '1.1.1.1', true, 'forwarded'],
    ['10.0.0.1', { forwarded: 'for=1.1.1.1, for=unknown' }, '10.0.0.1', false, 'forwarded'],
    ['10.0.0.1', { forwarded: 'for=1.1.1.1', 'x-forwarded-for': '1.1.1.1' }, '1.1.1.1', true, 'x-forwarded-for'],
    ['10.0.0.1', { forwarded: 'for=2.2.2.2', 'x-forwarded-for': '1.1.1.1' }, '10.0.0.1', false, 'x-forwarded-for'],
    ['::ffff:10.0.0.1', { 'x-forwarded-for': '1.1.1.1' }, '1.1.1.1', true, 'x-forwarded-for'],
    ['2001:db8:ffff::5', { 'x-forwarded-for': '[2001:4860:4860::8888]:1234' }, '2001:4860:4860::8888', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-forwarded-for': '1.1.1.1, ::ffff:10.9.9.9' }, '1.1.1.1', true, 'x-forwarded-for'],
    ['10.0.0.1', { 'x-real-ip': '1.1.1.1', 'true-client-ip': '1.1.1.1', 'cf-connecting-ip': '1.1.1.1' }, '10.0.0.1', true, 'socket'],
    ['', {}, 'unknown', false, 'socket']
  ]
  for (const [peer, headers, ip, located, via] of cases) {
    const got = r.resolve(peer, headers)
    t.same({ ip: got.ip, located: got.located, via: got.via }, { ip, located, via }, `${peer} ${JSON.stringify(headers)}`)
  }
  t.equal(r.resolve('10.0.0.1', {}).internal, true)
  t.equal(r.resolve('10.0.0.1', { 'x-forwarded-for': '1.1.1.1, junk' }).internal, false, 'an unlocatable address is never internal')
  const none = new ClientIpResolver([])
  t.equal(none.resolve('127.0.0.1', { 'x-forwarded-for': '1.1.1.1' }).ip, '127.0.0.1', 'no trusted proxies: headers ignored')
  t.throws(() => new ClientIpResolver(['nope']), /trustedProxies/)

  // prefixes at every boundary, both families, mapped spellings of the list and of the address
  const p = new ClientIpResolver(['192.168.4.0/22', '0.0.0.0/0', '2001:db8:abcd:12::/63', '::ffff:172.16.0.0/108'])
  t.ok(p.isTrusted('8.8.8.8'), '/0 trusts every IPv4 address')
  t.notOk(p.isTrusted('2001:4860::1'), 'but no IPv6 one')
  const q = new ClientIpResolver(['192.168.4.0/22', '2001:db8:abcd:12::/63', '::ffff:172.16.0.0/108'])
  for (const ip of ['192.168.4.0', '192.168.7.255', '::ffff:192.168.5.5', '2001:db8:abcd:12::1', '2001:db8:abcd:13:ffff::1', '172.16.0.1', '172.31.255.255']) t.ok(q.isTrusted(ip), `trusted ${ip}`)
  for (const ip of ['192.168.3.255', '192.168.8.0', '2001:db8:abcd:14::1', '2001:db8:abcd:11::1', '172.32.0.1', 'junk']) t.notOk(q.isTrusted(ip), `not trusted ${ip}`)
})
