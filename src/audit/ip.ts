import { createHmac } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'

export type IpMode = 'full' | 'truncated' | 'hashed'

/**
 * The caller's IP as the audit log keeps it. truncated: IPv4 /24, IPv6 /48 (the prefixes GDPR guidance and
 * analytics products use for pseudonymisation); hashed: HMAC-SHA-256 with a secret salt, so the same caller
 * hashes the same across records but the address cannot be brute-forced from the 2^32 IPv4 space without it.
 */
export function auditIp (ip: string, mode: IpMode, salt: string | undefined): string {
  if (mode === 'full' || ip === '') return ip
  if (mode === 'hashed') return 'hmac-sha256:' + createHmac('sha256', salt ?? '').update(ip).digest('hex')
  if (isIPv4(ip)) {
    const p = ip.split('.')
    return `${p[0] ?? '0'}.${p[1] ?? '0'}.${p[2] ?? '0'}.0/24`
  }
  if (isIPv6(ip)) return `${expandV6(ip).slice(0, 3).map((h) => h.replace(/^0+(?=.)/, '')).join(':')}::/48`
  return ip
}

function expandV6 (ip: string): string[] {
  const zone = ip.indexOf('%')
  const addr = zone === -1 ? ip : ip.slice(0, zone)
  const [head = '', tail] = addr.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  // An embedded IPv4 tail (::ffff:1.2.3.4) takes two groups; only the first three groups matter here.
  const tailGroups = t.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0)
  const fill = tail === undefined ? [] : new Array<string>(Math.max(0, 8 - h.length - tailGroups)).fill('0')
  return [...h, ...fill, ...t, '0', '0', '0'].map((g) => g.padStart(1, '0'))
}
