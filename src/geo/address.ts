import { isIPv4, isIPv6 } from 'node:net'
import { parseIPv6 } from './tree.js'

export interface LookupAddress {
  ip: string
  version: 4 | 6
  /** IPv6 only: the 16 bytes */
  bytes?: Uint8Array
}

/**
 * The address a lookup walks the tree with. The client-ip stage already canonicalises; this stays robust on its
 * own: brackets and zone ids are dropped, and IPv4-mapped IPv6 (`::ffff:1.2.3.4`, `::ffff:102:304`) becomes the
 * IPv4 address, because open databases (the embedded default among them) do not alias ::ffff:0:0/96.
 * Returns null for anything that is not an IP address.
 */
export function lookupAddress (raw: string): LookupAddress | null {
  if (isIPv4(raw)) return { ip: raw, version: 4 }
  let s = raw.trim()
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1)
  const pct = s.indexOf('%')
  if (pct !== -1) s = s.slice(0, pct) // zone ids belong to IPv6 link-local addresses only
  if (isIPv4(s)) return pct === -1 ? { ip: s, version: 4 } : null
  if (!isIPv6(s)) return null
  const b = parseIPv6(s)
  if (b[10] === 0xff && b[11] === 0xff && b.subarray(0, 10).every((x) => x === 0)) {
    return { ip: `${b[12] ?? 0}.${b[13] ?? 0}.${b[14] ?? 0}.${b[15] ?? 0}`, version: 4 }
  }
  return { ip: s, version: 6, bytes: b }
}
