import t from 'tap'
import { auditIp } from '../../src/audit/ip.js'

t.test('full keeps the address', async (t) => {
  t.equal(auditIp('203.0.113.9', 'full', undefined), '203.0.113.9')
})

t.test('truncated: IPv4 /24, IPv6 /48', async (t) => {
  t.equal(auditIp('203.0.113.9', 'truncated', undefined), '203.0.113.0/24')
  t.equal(auditIp('2001:db8:1:2:3:4:5:6', 'truncated', undefined), '2001:db8:1::/48')
  t.equal(auditIp('2001:db8::1', 'truncated', undefined), '2001:db8:0::/48')
  t.equal(auditIp('::1', 'truncated', undefined), '0:0:0::/48')
  t.equal(auditIp('fe80::1%eth0', 'truncated', undefined), 'fe80:0:0::/48')
  t.equal(auditIp('2001:0db8:00a0::1', 'truncated', undefined), '2001:db8:a0::/48')
})

t.test('hashed: HMAC-SHA-256 with the salt, stable, salt-dependent, never the address', async (t) => {
  const a = auditIp('203.0.113.9', 'hashed', 'salt-one-0123456789')
  t.match(a, /^hmac-sha256:[0-9a-f]{64}$/)
  t.equal(auditIp('203.0.113.9', 'hashed', 'salt-one-0123456789'), a)
  t.not(auditIp('203.0.113.9', 'hashed', 'salt-two-0123456789'), a)
  t.not(auditIp('203.0.113.10', 'hashed', 'salt-one-0123456789'), a)
  t.notMatch(a, /203\.0\.113/)
})
