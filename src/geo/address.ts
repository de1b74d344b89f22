import { ipv6Bytes, parseIPv4, parseIp } from '../net/address.js'

export interface LookupAddress {
  /** canonical text (net/address.ts) */
  ip: string
  version: 4 | 6
  /** IPv4: the unsigned 32-bit value */
  v4: number
  /** IPv6 only: the 16 bytes */
  bytes?: Uint8Array
}

const BARE = { ports: false } as const

/**
 * The address a lookup walks the tree with, parsed by the one parser (net/address.ts): brackets and zone ids are
 * dropped, IPv4-mapped IPv6 (`::ffff:1.2.3.4`, `::ffff:102:304`) and NAT64 (`64:ff9b::102:304`) become the IPv4
 * address, because open databases (the embedded default among them) alias neither. No ports: a lookup names an
 * address. Returns null for anything that is not one IP address.
 */
export function lookupAddress (raw: string): LookupAddress | null {
  // fast path: a strict dotted quad (what the client-IP stage hands over for IPv4 callers) is already canonical
  const quad = parseIPv4(raw)
  if (quad !== -1) return { ip: raw, version: 4, v4: quad }
  const a = parseIp(raw, BARE)
  if (a === null) return null
  if (a.v6 === null) return { ip: a.text, version: 4, v4: a.v4 }
  return { ip: a.text, version: 6, v4: -1, bytes: ipv6Bytes(a.v6) }
}
