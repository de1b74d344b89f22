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
// so every address is parsed here into numbers and printed back in one canonical form before anything uses it.
// Hand-written scanners, no regex or split per address: this runs for every hop of every request.

/** A parsed address: IPv4 as an unsigned 32-bit number, IPv6 as eight 16-bit groups. */
interface Addr { text: string, v4: number, v6: number[] | null }

const ZONE = /^[A-Za-z0-9_.~-]{1,64}$/

/** Strict dotted quad: no leading zeros (octal in some parsers), no short forms, each octet ≤ 255. */
function parseIPv4 (s: string, from = 0, to = s.length): number {
  let value = 0
  let octets = 0
  let i = from
  while (i <= to) {
    const start = i
    let n = 0
    while (i < to) {
      const c = s.charCodeAt(i)
      if (c < 48 || c > 57) break
      n = n * 10 + (c - 48)
      i++
    }
    const len = i - start
    if (len === 0 || len > 3 || n > 255 || (len > 1 && s.charCodeAt(start) === 48)) return -1
    value = value * 256 + n
    octets++
    if (i === to) break
    if (s.charCodeAt(i) !== 46 || octets === 4) return -1
    i++
  }
  return octets === 4 ? value : -1
}

function hexDigit (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** RFC 4291 text form to eight 16-bit groups (an embedded dotted quad allowed last). */
function parseIPv6 (s: string): number[] | null {
  const n = s.length
  if (n < 2 || n > 45) return null
  const groups: number[] = []
  let gap = -1
  let i = 0
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return null
    gap = 0
    i = 2
  }
  while (i < n) {
    let j = i
    let v = 0
    while (j < n && j - i < 5) {
      const d = hexDigit(s.charCodeAt(j))
      if (d === -1) break
      v = v * 16 + d
      j++
    }
    if (j < n && s.charCodeAt(j) === 46) {
      const v4 = parseIPv4(s, i, n)
      if (v4 === -1 || groups.length > 6) return null
      groups.push(Math.floor(v4 / 65536), v4 % 65536)
      break
    }
    if (j === i || j - i > 4) return null
    groups.push(v)
    if (groups.length > 8) return null
    if (j === n) break
    if (s.charCodeAt(j) !== 58) return null
    if (s.charCodeAt(j + 1) === 58) {
      if (gap !== -1) return null
      gap = groups.length
      j += 2
    } else {
      j += 1
      if (j === n) return null
    }
    i = j
  }
  if (gap === -1) return groups.length === 8 ? groups : null
  if (groups.length > 7) return null
  groups.splice(gap, 0, ...new Array<number>(8 - groups.length).fill(0))
  return groups
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

function v4Text (v: number): string {
  return `${Math.floor(v / 16777216)}.${Math.floor(v / 65536) % 256}.${Math.floor(v / 256) % 256}.${v % 256}`
}

function validPort (s: string, from: number): boolean {
  const len = s.length - from
  if (len < 1 || len > 5) return false
  let n = 0
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return false
    n = n * 10 + (c - 48)
  }
  return n <= 65535
}

/**
 * Parse one address as proxies write it: `[v6]`, `[v6]:port`, `v4:port`, a zone id (`fe80::1%eth0`, dropped: it
 * names our interface, not the caller). IPv4-mapped (`::ffff:1.2.3.4`, `::ffff:0102:0304`) and RFC 6052 NAT64
 * (`64:ff9b::/96`) addresses become the IPv4 address they carry, so one caller never has two spellings (separate
 * rate buckets, slipped IPv4 rules).
 */
function parseAddr (raw: string): Addr | null {
  let s = raw.trim()
  if (s === '' || s.length > 64) return null
  if (s.charCodeAt(0) === 91) { // [
    const close = s.indexOf(']')
    if (close === -1) return null
    if (close + 1 < s.length && (s.charCodeAt(close + 1) !== 58 || !validPort(s, close + 2))) return null
    s = s.slice(1, close)
    if (!s.includes(':')) return null
  }
  const colon = s.indexOf(':')
  if (colon === -1 || (colon === s.lastIndexOf(':') && s.includes('.'))) {
    // `1.2.3.4` or `1.2.3.4:5678` (Azure and others append the port): one colon cannot be IPv6
    if (colon !== -1 && !validPort(s, colon + 1)) return null
    const v4 = parseIPv4(s, 0, colon === -1 ? s.length : colon)
    return v4 === -1 ? null : { text: v4Text(v4), v4, v6: null }
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
  if ((g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) ||
      (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0)) {
    const v4 = g6 * 65536 + g7
    return { text: v4Text(v4), v4, v6: null }
  }
  return { text: formatIPv6(g), v4: -1, v6: g }
}

/** Canonical text form of one address, or null for anything that is not exactly one address. */
export function canonicalIp (raw: string): string | null {
  return parseAddr(raw)?.text ?? null
}

function internal (a: Addr): boolean {
  if (a.v6 === null) {
    const o1 = Math.floor(a.v4 / 16777216)
    const o2 = Math.floor(a.v4 / 65536) % 256
    return o1 === 127 || o1 === 10 || (o1 === 172 && o2 >= 16 && o2 <= 31) || (o1 === 192 && o2 === 168) || (o1 === 169 && o2 === 254)
  }
  const g = a.v6
  const first = g[0] ?? 0
  const loopback = g[7] === 1 && g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0 && g[6] === 0
  return loopback || (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80
}

/**
 * Loopback, private and link-local addresses (RFC 1122, 1918, 3927, 4193, 4291). Carrier-grade NAT 100.64.0.0/10
 * is not included: such callers are customers of a provider, not of this network.
 */
export function isInternalIp (ip: string, extra: readonly string[] = []): boolean {
  const a = parseAddr(ip)
  if (a === null) return false
  if (internal(a)) return true
  for (const v of extra) {
    const c = parseCidr(v)
    if (typeof c !== 'string' && inCidr(a, c)) return true
  }
  return false
}

// ---------------------------------------------------------------------------------------------------------------
// Trusted proxies

export interface CidrIssue { index: number, value: string, message: string }

interface Cidr { addr: Addr, prefix: number }

function parseCidr (value: string): Cidr | string {
  const slash = value.indexOf('/')
  const base = slash === -1 ? value : value.slice(0, slash)
  const prefixText = slash === -1 ? null : value.slice(slash + 1)
  // a CIDR is written bare: no port, no brackets, no zone
  if (base.includes('[') || base.includes('%')) return 'not an IP address or CIDR'
  const addr = parseAddr(base)
  // one colon is `v4:port`: an IPv6 address has at least two
  const oneColon = base.includes(':') && base.indexOf(':') === base.lastIndexOf(':')
  if (addr === null || oneColon) return 'not an IP address or CIDR'
  const wasV6 = base.includes(':')
  let prefix = addr.v6 === null ? 32 : 128
  if (prefixText !== null) {
    if (!/^[0-9]{1,3}$/.test(prefixText)) return 'prefix length must be a number'
    prefix = Number(prefixText)
    const max = wasV6 ? 128 : 32
    if (prefix > max) return `prefix length must be at most ${max}`
    // `::ffff:10.0.0.0/104` is written in IPv6 but canonicalises to IPv4: carry the prefix over
    if (wasV6 && addr.v6 === null) {
      if (prefix < 96) return 'an IPv4-mapped prefix must be at least /96'
      prefix -= 96
    }
  }
  return { addr, prefix }
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

function inCidr (a: Addr, c: Cidr): boolean {
  if ((a.v6 === null) !== (c.addr.v6 === null)) return false
  if (a.v6 === null || c.addr.v6 === null) {
    if (c.prefix === 0) return true
    const size = 2 ** (32 - c.prefix)
    return Math.floor(a.v4 / size) === Math.floor(c.addr.v4 / size)
  }
  let bits = c.prefix
  for (let i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    const mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff
    if (((a.v6[i] ?? 0) & mask) !== ((c.addr.v6[i] ?? 0) & mask)) return false
  }
  return true
}

/**
 * The client-address resolver for one configuration: the trusted CIDRs are parsed once, at boot, and matched
 * numerically (node:net BlockList.check costs microseconds per call, several times per request).
 */
export class ClientIpResolver {
  readonly #trusted: readonly Cidr[]
  readonly #internalNets: readonly Cidr[]

  /** `internalNetworks`: CIDRs that are internal besides loopback, private and link-local (server.internalNetworks). */
  constructor (trustedProxies: readonly string[], internalNetworks: readonly string[] = []) {
    const compile = (option: string) => (value: string): Cidr => {
      const c = parseCidr(value)
      if (typeof c === 'string') throw new Error(`${option}: "${value}": ${c}`)
      return c
    }
    this.#trusted = trustedProxies.map(compile('server.trustedProxies'))
    this.#internalNets = internalNetworks.map(compile('server.internalNetworks'))
  }

  #internal (a: Addr): boolean {
    if (internal(a)) return true
    for (const c of this.#internalNets) if (inCidr(a, c)) return true
    return false
  }

  /** Is this address (any accepted spelling) one of our proxies? */
  isTrusted (ip: string): boolean {
    const a = parseAddr(ip)
    return a !== null && this.#trustedAddr(a)
  }

  #trustedAddr (a: Addr): boolean {
    for (const c of this.#trusted) if (inCidr(a, c)) return true
    return false
  }

  resolve (peer: string, headers: IncomingHttpHeaders): ClientAddress {
    const p = parseAddr(peer)
    if (p === null) return { ip: peer === '' ? 'unknown' : peer, via: 'socket', located: false, internal: false }
    if (this.#trusted.length === 0 || !this.#trustedAddr(p)) return { ip: p.text, via: 'socket', located: true, internal: this.#internal(p) }
    const xff = headerLines(headers['x-forwarded-for'])
    const fwd = headerLines(headers.forwarded)
    const fromXff = xff === null ? null : this.#walk(p, splitList(xff))
    const fromFwd = fwd === null ? null : this.#walk(p, forwardedFor(fwd))
    if (fromXff === null && fromFwd === null) return { ip: p.text, via: 'socket', located: true, internal: this.#internal(p) }
    if (fromXff !== null && fromFwd !== null && (fromXff.addr.text !== fromFwd.addr.text || fromXff.located !== fromFwd.located)) {
      // Two chains that disagree: we cannot tell which one our proxy wrote and which one the client did.
      return { ip: p.text, via: 'x-forwarded-for', located: false, internal: false }
    }
    const w = fromXff ?? fromFwd
    if (w === null) return { ip: p.text, via: 'socket', located: true, internal: this.#internal(p) }
    return { ip: w.addr.text, via: fromXff !== null ? 'x-forwarded-for' : 'forwarded', located: w.located, internal: w.located && this.#internal(w.addr) }
  }

  /**
   * Right to left: every entry written by a trusted hop is skipped; the first untrusted address is the client.
   * An entry we cannot parse (junk, `unknown`, an obfuscated `_node`) at that point stops the walk: the hop that
   * handed it to us is the last one we know, and the location is unknown (never the proxy's own location).
   * If every entry is trusted, the left-most one is the client (a caller inside the trusted network).
   */
  #walk (peer: Addr, entries: string[]): { addr: Addr, located: boolean } {
    let current = peer
    for (let i = entries.length - 1; i >= 0; i--) {
      const a = parseAddr(entries[i] ?? '')
      if (a === null) return { addr: current, located: false }
      if (!this.#trustedAddr(a)) return { addr: a, located: true }
      current = a
    }
    return { addr: current, located: true }
  }
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
