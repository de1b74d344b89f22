/*
 * IP addresses and CIDRs: the one parser every stage uses (client IP, geo lookups, the audit log's truncation,
 * trusted-proxy lists), so one caller has one address everywhere.
 *
 * Node's net.isIP accepts `fe80::1%eth0`, `::ffff:0102:0304`, `64:ff9b::102:304`, so every address is parsed here
 * into numbers and printed back in one canonical form before anything uses it. Hand-written scanners, no regex or
 * split per address: this runs for every hop of every request.
 */

/** A parsed address: IPv4 as an unsigned 32-bit number (v6 null), or IPv6 as eight 16-bit groups (v4 -1). */
export interface IpAddress {
  /** canonical text: dotted quad, or RFC 5952 IPv6 */
  readonly text: string
  readonly v4: number
  readonly v6: readonly number[] | null
}

export interface ParseOptions {
  /** accept `1.2.3.4:443` and `[v6]:443` (as proxies write them); the port is dropped. Default true. */
  ports?: boolean
}

const ZONE = /^[A-Za-z0-9_.~-]{1,64}$/

/**
 * Strict dotted quad of s[from, to): no leading zeros (octal in some parsers), no short forms, each octet ≤ 255.
 * The unsigned 32-bit value, or -1.
 */
export function parseIPv4 (s: string, from = 0, to = s.length): number {
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

/** RFC 4291 text form to eight 16-bit groups (an embedded dotted quad allowed last); null if not exactly that. */
export function parseIPv6 (s: string): number[] | null {
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
export function formatIPv6 (g: readonly number[]): string {
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

export function formatIPv4 (v: number): string {
  return `${Math.floor(v / 16777216)}.${Math.floor(v / 65536) % 256}.${Math.floor(v / 256) % 256}.${v % 256}`
}

/** The 16 bytes of an IPv6 address (what the MaxMind tree walk reads). */
export function ipv6Bytes (g: readonly number[]): Uint8Array {
  const out = new Uint8Array(16)
  for (let i = 0; i < 8; i++) {
    const v = g[i] ?? 0
    out[i * 2] = v >> 8
    out[i * 2 + 1] = v & 255
  }
  return out
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
 * IPv6 spellings of an IPv4 address, which become that IPv4 address so one caller never has two spellings
 * (separate rate buckets, slipped IPv4 rules, a geo lookup that misses):
 *   ::ffff:0:0/96   IPv4-mapped (RFC 4291), how dual-stack sockets report IPv4 peers
 *   64:ff9b::/96    the RFC 6052 well-known NAT64 prefix: a translator (SIIT, NAT64 in reverse) carries the IPv4
 *                   address in the low 32 bits. GeoIP databases alias ::ffff:0:0/96 at most, never this prefix.
 */
function embeddedIPv4 (g: readonly number[]): number {
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number]
  if ((g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) ||
      (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0)) {
    return g6 * 65536 + g7
  }
  return -1
}

/**
 * Parse one address as proxies write it: `[v6]`, `[v6]:port`, `v4:port` (unless `ports: false`), a zone id
 * (`fe80::1%eth0`, dropped: it names our interface, not the caller), surrounding blanks. IPv4-mapped and NAT64
 * addresses become the IPv4 address they carry (embeddedIPv4). Null for anything that is not exactly one address.
 */
export function parseIp (raw: string, opts?: ParseOptions): IpAddress | null {
  const ports = opts?.ports !== false
  let s = raw.trim()
  if (s === '' || s.length > 64) return null
  if (s.charCodeAt(0) === 91) { // [
    const close = s.indexOf(']')
    if (close === -1) return null
    if (close + 1 < s.length && (!ports || s.charCodeAt(close + 1) !== 58 || !validPort(s, close + 2))) return null
    s = s.slice(1, close)
    if (!s.includes(':')) return null
  }
  const colon = s.indexOf(':')
  if (colon === -1 || (colon === s.lastIndexOf(':') && s.includes('.'))) {
    // `1.2.3.4` or `1.2.3.4:5678` (Azure and others append the port): one colon cannot be IPv6
    if (colon !== -1 && (!ports || !validPort(s, colon + 1))) return null
    const v4 = parseIPv4(s, 0, colon === -1 ? s.length : colon)
    return v4 === -1 ? null : { text: formatIPv4(v4), v4, v6: null }
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
  const v4 = embeddedIPv4(g)
  if (v4 !== -1) return { text: formatIPv4(v4), v4, v6: null }
  return { text: formatIPv6(g), v4: -1, v6: g }
}

/** Canonical text form of one address, or null for anything that is not exactly one address. */
export function canonicalIp (raw: string): string | null {
  return parseIp(raw)?.text ?? null
}

/**
 * Loopback, private and link-local addresses (RFC 1122, 1918, 3927, 4193, 4291). Carrier-grade NAT 100.64.0.0/10
 * is not included: such callers are customers of a provider, not of this network.
 */
export function isInternal (a: IpAddress): boolean {
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

export function isInternalIp (ip: string): boolean {
  const a = parseIp(ip)
  return a !== null && isInternal(a)
}

// ---------------------------------------------------------------------------------------------------------------
// CIDRs

export interface Cidr { readonly addr: IpAddress, readonly prefix: number }
export interface CidrIssue { index: number, value: string, message: string }

/** `10.0.0.0/8`, `2001:db8::/32`, a bare address (/32, /128); the reason as a string when it is none of these. */
export function parseCidr (value: string): Cidr | string {
  const slash = value.indexOf('/')
  const base = slash === -1 ? value : value.slice(0, slash)
  const prefixText = slash === -1 ? null : value.slice(slash + 1)
  // a CIDR is written bare: no port, no brackets, no zone
  if (base.includes('[') || base.includes('%')) return 'not an IP address or CIDR'
  const addr = parseIp(base, { ports: false })
  if (addr === null) return 'not an IP address or CIDR'
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

/** Every malformed entry of a CIDR list, for the configuration check (all errors at once). */
export function cidrIssues (cidrs: readonly string[]): CidrIssue[] {
  const issues: CidrIssue[] = []
  cidrs.forEach((value, index) => {
    const c = parseCidr(value)
    if (typeof c === 'string') issues.push({ index, value, message: c })
  })
  return issues
}

export function inCidr (a: IpAddress, c: Cidr): boolean {
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
