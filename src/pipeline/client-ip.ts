import type { IncomingHttpHeaders } from 'node:http'
import { isIP } from 'node:net'

/** Canonical textual form of an address: IPv4-mapped IPv6 becomes IPv4. */
export function canonicalIp (raw: string): string | null {
  let s = raw.trim()
  if (s.toLowerCase().startsWith('::ffff:') && isIP(s.slice(7)) === 4) s = s.slice(7)
  return isIP(s) === 0 ? null : s.toLowerCase()
}

/**
 * The caller's address. Forwarding headers are believed only from trusted peers.
 * TODO(issue 3): trusted proxies, right-most untrusted X-Forwarded-For / Forwarded.
 */
export function resolveClientIp (peer: string, _headers: IncomingHttpHeaders): string {
  return canonicalIp(peer) ?? peer
}
