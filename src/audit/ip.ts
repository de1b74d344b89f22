import { createHmac } from 'node:crypto'
import { parseIp } from '../net/address.js'

export type IpMode = 'full' | 'truncated' | 'hashed'

/**
 * The caller's IP as the audit log keeps it. truncated: IPv4 /24, IPv6 /48 (the prefixes GDPR guidance and
 * analytics products use for pseudonymisation); hashed: HMAC-SHA-256 with a secret salt, so the same caller
 * hashes the same across records but the address cannot be brute-forced from the 2^32 IPv4 space without it.
 * Parsed by the one parser (net/address.ts): an IPv4-mapped or NAT64 spelling truncates as the IPv4 address.
 */
export function auditIp (ip: string, mode: IpMode, salt: string | undefined): string {
  if (mode === 'full' || ip === '') return ip
  if (mode === 'hashed') return 'hmac-sha256:' + createHmac('sha256', salt ?? '').update(ip).digest('hex')
  const a = parseIp(ip, { ports: false })
  if (a === null) return ip
  if (a.v6 === null) return `${Math.floor(a.v4 / 16777216)}.${Math.floor(a.v4 / 65536) % 256}.${Math.floor(a.v4 / 256) % 256}.0/24`
  return `${a.v6.slice(0, 3).map((g) => g.toString(16)).join(':')}::/48`
}
