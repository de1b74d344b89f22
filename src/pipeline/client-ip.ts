/*
 * Step 1 of the pipeline: who is on the other end, as an address every later stage (geo, limits, audit) agrees on.
 *
 *   socket peer ──untrusted──► the peer is the client
 *        │trusted (server.trustedProxies)
 *        ▼
 *   X-Forwarded-For / Forwarded, walked right to left: skip trusted hops, the first untrusted address is the client
 *
 * Fastify's trustProxy is never used: it takes the left-most entry, which the client writes (fastify#5865).
 * X-Real-IP, True-Client-IP, CF-Connecting-IP and CF-IPCountry are never read: a client can send any of them.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { BlockList } from 'node:net'

/** How the client address was established. */
export interface ClientAddress {
  /** canonical text form (IPv4 dotted quad, or RFC 5952 IPv6); `unknown` only when the socket had no address */
  ip: string
  via: 'socket' | 'x-forwarded-for' | 'forwarded'
  /**
   * false when the address cannot be located: the forwarding chain held an unparsable entry at a point where it
   * had to be believed, or X-Forwarded-For and Forwarded disagree. `ip` is then the last hop we do trust (the
   * honest thing to record); the policy treats the location as unknown.
   */
  located: boolean
  /** loopback, private (RFC 1918, ULA) or link-local: gets `locations.internal` when configured */
  internal: boolean
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing and canonical form. Node's net.isIP accepts `fe80::1%eth0`, `::ffff:0102:0304`, `64:ff9b::102:304`,
// so every address is parsed here into bytes and printed back in one canonical form before anything uses it.

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/
const ZONE = /^[A-Za-z0-9_.~-]{1,64}$/

/** Strict dotted quad: no leading zeros (octal in some parsers), no short forms, each octet ≤ 255. */
function parseIPv4 (s: string): number[] | null {
  const parts = s.split('.')
  if (parts.length !== 4) return null
  const out: number[] = []
  for (const p of parts) {
    if (!DEC_OCTET.test(p)) return null
    const n = Number(p)
    if (n > 255) return null
    out.push(n)
  }
  return out
}

/** RFC 4291 text form to eight 16-bit groups (an embedded dotted quad allowed last). */
function parseIPv6 (s: string): number[] | null {
  if (s.length > 45 || s.includes(':::')) return null
  const halves = s.split('::')
  if (halves.length > 2) return null
  const groupsOf = (part: string, last: boolean): number[] | null => {
    if (part === '') return []
    const out: number[] = []
    const items = part.split(':')
    for (let i = 0; i < items.length; i++) {
      const it = items[i] ?? ''
      if (last && i === items.length - 1 && it.includes('.')) {
        const v4 = parseIPv4(it)
        if (v4 === null) return null
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0))
      } else {
        if (!HEX_GROUP.test(it)) return null
        out.push(parseInt(it, 16))
      }
    }
    return out
  }
  if (halves.length === 1) {
    const g = groupsOf(s, true)
    return g !== null && g.length === 8 ? g : null
  }
  const head = groupsOf(halves[0] ?? '', false)
  const tail = groupsOf(halves[1] ?? '', true)
  if (head === null || tail === null || head.length + tail.length > 7) return null
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

/** RFC 5952: lower case, no leading zeros, the longest run (≥ 2) of zero groups as `::`, the first one on a tie. */
function formatIPv6 (g: number[]): string {
  let bestAt = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) { bestAt = i; bestLen = j - i }
    i = j
  }
  const hex = g.map((x) => x.toString(16))
  if (bestAt === -1) return hex.join(':')
  return hex.slice(0, bestAt).join(':') + '::' + hex.slice(bestAt + bestLen).join(':')
}

function v4FromGroups (hi: number, lo: number): string {
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
}

/**
 * Canonical text form of one address, or null for anything that is not exactly one address. Accepts what proxies
 * write: `[v6]`, `[v6]:port`, `v4:port`, a zone id (`fe80::1%eth0`, dropped: it names our interface, not the
 * caller). IPv4-mapped (`::ffff:1.2.3.4`, `::ffff:0102:0304`) and RFC 6052 NAT64 (`64:ff9b::/96`) addresses become
 * the IPv4 address they carry, so one caller never has two spellings (separate rate buckets, slipped v4 rules).
 */
export function canonicalIp (raw: string): string | null {
  let s = raw.trim()
  if (s === '' || s.length > 64) return null
  if (s.startsWith('[')) {
    const close = s.indexOf(']')
    if (close === -1) return null
    const rest = s.slice(close + 1)
    if (rest !== '' && !validPort(rest)) return null
    s = s.slice(1, close)
    if (!s.includes(':')) return null
  } else if (s.includes('.') && s.indexOf(':') === s.lastIndexOf(':') && s.includes(':')) {
    // `1.2.3.4:5678` (Azure and others append the port): one colon cannot be IPv6
    const colon = s.indexOf(':')
    if (!validPort(s.slice(colon))) return null
    s = s.slice(0, colon)
  }
  if (!s.includes(':')) {
    const v4 = parseIPv4(s)
    return v4 === null ? null : v4.join('.')
  }
  const pct = s.indexOf('%')
  if (pct !== -1) {
    // RFC 6874 writes the zone as %25zone inside URIs
    const zone = s.slice(pct + 1).replace(/^25/, '')
    if (!ZONE.test(zone)) return null
    s = s.slice(0, pct)
  }
  const g = parseIPv6(s)
  if (g === null) return null
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number]
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) return v4FromGroups(g6, g7)
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return v4FromGroups(g6, g7)
  return formatIPv6(g)
}

function validPort (s: string): boolean {
  if (!/^:[0-9]{1,5}$/.test(s)) return false
  return Number(s.slice(1)) <= 65535
}

/**
 * Loopback, private and link-local addresses (RFC 1122, 1918, 3927, 4193, 4291). Carrier-grade NAT 100.64.0.0/10
 * is not included: such callers are customers of a provider, not of this network.
 */
export function isInternalIp (ip: string): boolean {
  if (!ip.includes(':')) {
    const o = parseIPv4(ip)
    if (o === null) return false
    const [a, b] = o as [number, number, number, number]
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254)
  }
  const g = parseIPv6(ip)
  if (g === null) return false
  const first = g[0] ?? 0
  const loopback = g.slice(0, 7).every((x) => x === 0) && g[7] === 1
  return loopback || (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80
}

// ---------------------------------------------------------------------------------------------------------------
// Trusted proxies

export interface CidrIssue { index: number, value: string, message: string }

interface Cidr { address: string, prefix: number, family: 'ipv4' | 'ipv6' }

function parseCidr (value: string): Cidr | string {
  const slash = value.indexOf('/')
  const base = slash === -1 ? value : value.slice(0, slash)
  const prefixText = slash === -1 ? null : value.slice(slash + 1)
  // a CIDR is written bare: no port, no brackets, no zone
  if (base.includes('[') || base.includes('%')) return 'not an IP address or CIDR'
  const canon = canonicalIp(base)
  if (canon === null) return 'not an IP address or CIDR'
  const wasV6 = base.includes(':')
  const isV4 = !canon.includes(':')
  let prefix = isV4 ? 32 : 128
  if (prefixText !== null) {
    if (!/^[0-9]{1,3}$/.test(prefixText)) return 'prefix length must be a number'
    prefix = Number(prefixText)
    const max = wasV6 ? 128 : 32
    if (prefix > max) return `prefix length must be at most ${max}`
    // `::ffff:10.0.0.0/104` is written in IPv6 but canonicalises to IPv4: carry the prefix over
    if (wasV6 && isV4) {
      if (prefix < 96) return 'an IPv4-mapped prefix must be at least /96'
      prefix -= 96
    }
  }
  return { address: canon, prefix, family: isV4 ? 'ipv4' : 'ipv6' }
}

/** Every malformed entry of `server.trustedProxies`, for the configuration check (all errors at once). */
export function trustedProxyIssues (cidrs: readonly string[]): CidrIssue[] {
  const issues: CidrIssue[] = []
  cidrs.forEach((value, index) => {
    const c = parseCidr(value)
    if (typeof c === 'string') issues.push({ index, value, message: c })
  })
  return issues
}

/**
 * The client-address resolver for one configuration: the trusted CIDRs are compiled once, at boot, into a
 * node:net BlockList (native prefix matching, both families).
 */
export class ClientIpResolver {
  readonly #trusted = new BlockList()
  readonly #any: boolean

  constructor (trustedProxies: readonly string[]) {
    for (const value of trustedProxies) {
      const c = parseCidr(value)
      if (typeof c === 'string') throw new Error(`server.trustedProxies: "${value}": ${c}`)
      this.#trusted.addSubnet(c.address, c.prefix, c.family)
    }
    this.#any = trustedProxies.length > 0
  }

  /** `ip` must already be canonical. */
  isTrusted (ip: string): boolean {
    return this.#any && this.#trusted.check(ip, ip.includes(':') ? 'ipv6' : 'ipv4')
  }

  resolve (peer: string, headers: IncomingHttpHeaders): ClientAddress {
    const p = canonicalIp(peer)
    if (p === null) return { ip: peer === '' ? 'unknown' : peer, via: 'socket', located: false, internal: false }
    if (!this.isTrusted(p)) return address(p, 'socket', true)
    const xff = headerLines(headers['x-forwarded-for'])
    const fwd = headerLines(headers.forwarded)
    const fromXff = xff === null ? null : this.#walk(p, splitList(xff))
    const fromFwd = fwd === null ? null : this.#walk(p, forwardedFor(fwd))
    if (fromXff === null && fromFwd === null) return address(p, 'socket', true)
    if (fromXff !== null && fromFwd !== null && (fromXff.ip !== fromFwd.ip || fromXff.located !== fromFwd.located)) {
      // Two chains that disagree: we cannot tell which one our proxy wrote and which one the client did.
      return address(p, 'x-forwarded-for', false)
    }
    if (fromXff !== null) return address(fromXff.ip, 'x-forwarded-for', fromXff.located)
    const f = fromFwd as { ip: string, located: boolean }
    return address(f.ip, 'forwarded', f.located)
  }

  /**
   * Right to left: every entry written by a trusted hop is skipped; the first untrusted address is the client.
   * An entry we cannot parse (junk, `unknown`, an obfuscated `_node`) at that point stops the walk: the hop that
   * handed it to us is the last one we know, and the location is unknown (never the proxy's own location).
   * If every entry is trusted, the left-most one is the client (a caller inside the trusted network).
   */
  #walk (peer: string, entries: string[]): { ip: string, located: boolean } {
    let current = peer
    for (let i = entries.length - 1; i >= 0; i--) {
      const c = canonicalIp(entries[i] ?? '')
      if (c === null) return { ip: current, located: false }
      if (!this.isTrusted(c)) return { ip: c, located: true }
      current = c
    }
    return { ip: current, located: true }
  }
}

function address (ip: string, via: ClientAddress['via'], located: boolean): ClientAddress {
  return { ip, via, located, internal: located && isInternalIp(ip) }
}

/** Several header lines of one field are one list, in order (RFC 9110 §5.3). Absent or blank: null. */
function headerLines (v: string | string[] | undefined): string | null {
  if (v === undefined) return null
  const s = Array.isArray(v) ? v.join(',') : v
  return s.trim() === '' ? null : s
}

/** A comma-separated list; empty elements are ignored as RFC 9110 §5.6.1 requires. */
function splitList (s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter((x) => x !== '')
}

/**
 * The `for=` of each RFC 7239 forwarded-element, in order. An element without `for`, or one that does not parse,
 * yields an entry that canonicalIp refuses (junk), so it stops the walk exactly where it stands.
 */
export function forwardedFor (s: string): string[] {
  const out: string[] = []
  for (const element of splitQuoted(s, ',')) {
    if (element.trim() === '') continue
    let value: string | null = null
    for (const pair of splitQuoted(element, ';')) {
      const eq = pair.indexOf('=')
      if (eq === -1) { value = null; break }
      const name = pair.slice(0, eq).trim().toLowerCase()
      if (name !== 'for') continue
      const v = unquote(pair.slice(eq + 1).trim())
      if (v === null || value !== null) { value = null; break } // a second `for` in one element is junk too
      value = v
    }
    out.push(value ?? '!junk')
  }
  return out
}

function splitQuoted (s: string, sep: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string
    if (quoted && ch === '\\' && i + 1 < s.length) { cur += ch + (s[i + 1] as string); i++; continue }
    if (ch === '"') quoted = !quoted
    if (!quoted && ch === sep) { out.push(cur); cur = ''; continue }
    cur += ch
  }
  out.push(cur)
  return out
}

function unquote (v: string): string | null {
  // RFC 7239 wants `[v6]` quoted; proxies that forget are accepted, the value must still be one address
  if (!v.startsWith('"')) return /^[!#$%&'*+.^_`|~0-9A-Za-z:[\]-]+$/.test(v) ? v : null
  if (v.length < 2 || !v.endsWith('"')) return null
  return v.slice(1, -1).replace(/\\(.)/g, '$1')
}
