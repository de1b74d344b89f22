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
 * Addresses and CIDRs are parsed by net/address.ts, the one parser.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { inCidr, isInternal, parseCidr, parseIp, type Cidr, type IpAddress } from './address.js'

/** How the client address was established. */
export interface ClientAddress {
  /** canonical text form (IPv4 dotted quad, or RFC 5952 IPv6); `unknown` only when the socket had no address */
  ip: string
  via: 'socket' | 'x-forwarded-for' | 'forwarded'
  /**
   * false when the address cannot be located: the forwarding chain held junk (an empty element, a blank header,
   * an unparsable entry) at a point where it had to be believed, or X-Forwarded-For and Forwarded disagree. `ip`
   * is then the last hop we do trust (the honest thing to record); the policy treats the location as unknown.
   */
  located: boolean
  /** loopback, private (RFC 1918, ULA) or link-local: gets `locations.internal` when configured */
  internal: boolean
}

/**
 * The client-address resolver for one configuration: the trusted CIDRs are parsed once, at boot, and matched
 * numerically (node:net BlockList.check costs microseconds per call, several times per request).
 */
export class ClientIpResolver {
  readonly #trusted: readonly Cidr[]

  constructor (trustedProxies: readonly string[]) {
    this.#trusted = trustedProxies.map((value) => {
      const c = parseCidr(value)
      if (typeof c === 'string') throw new Error(`server.trustedProxies: "${value}": ${c}`)
      return c
    })
  }

  /** Is this address (any accepted spelling) one of our proxies? */
  isTrusted (ip: string): boolean {
    const a = parseIp(ip)
    return a !== null && this.#trustedAddr(a)
  }

  #trustedAddr (a: IpAddress): boolean {
    for (const c of this.#trusted) if (inCidr(a, c)) return true
    return false
  }

  resolve (peer: string, headers: IncomingHttpHeaders): ClientAddress {
    const p = parseIp(peer)
    if (p === null) return { ip: peer === '' ? 'unknown' : peer, via: 'socket', located: false, internal: false }
    if (this.#trusted.length === 0 || !this.#trustedAddr(p)) return { ip: p.text, via: 'socket', located: true, internal: isInternal(p) }
    const xff = headerLines(headers['x-forwarded-for'])
    const fwd = headerLines(headers.forwarded)
    if (xff === null && fwd === null) return { ip: p.text, via: 'socket', located: true, internal: isInternal(p) }
    const fromXff = xff === null ? null : this.#walk(p, xff.split(','))
    const fromFwd = fwd === null ? null : this.#walk(p, forwardedFor(fwd))
    if (fromXff !== null && fromFwd !== null && (fromXff.addr.text !== fromFwd.addr.text || fromXff.located !== fromFwd.located)) {
      // Two chains that disagree: we cannot tell which one our proxy wrote and which one the client did.
      return { ip: p.text, via: 'x-forwarded-for', located: false, internal: false }
    }
    const w = fromXff ?? fromFwd
    if (w === null) return { ip: p.text, via: 'socket', located: true, internal: isInternal(p) }
    return { ip: w.addr.text, via: fromXff !== null ? 'x-forwarded-for' : 'forwarded', located: w.located, internal: w.located && isInternal(w.addr) }
  }

  /**
   * Right to left: every entry written by a trusted hop is skipped; the first untrusted address is the client.
   * An entry we cannot parse (junk, `unknown`, an obfuscated `_node`, an empty list element, a blank header) at
   * that point stops the walk: the hop that handed it to us is the last one we know, and the location is unknown
   * (never the proxy's own location). RFC 9110 lets a recipient skip empty list elements, but a trusted proxy
   * never writes one where the client's address belongs: there it is junk like any other.
   * If every entry is trusted, the left-most one is the client (a caller inside the trusted network).
   */
  #walk (peer: IpAddress, entries: string[]): { addr: IpAddress, located: boolean } {
    let current = peer
    for (let i = entries.length - 1; i >= 0; i--) {
      const a = parseIp(entries[i] ?? '')
      if (a === null) return { addr: current, located: false }
      if (!this.#trustedAddr(a)) return { addr: a, located: true }
      current = a
    }
    return { addr: current, located: true }
  }
}

/** Several header lines of one field are one list, in order (RFC 9110 §5.3). Absent: null; blank stays blank (junk). */
function headerLines (v: string | string[] | undefined): string | null {
  if (v === undefined) return null
  return Array.isArray(v) ? v.join(',') : v
}

/**
 * The `for=` of each RFC 7239 forwarded-element, in order. An element without `for`, one that does not parse, or
 * an empty one yields an entry that parseIp refuses (junk), so it stops the walk exactly where it stands.
 */
export function forwardedFor (s: string): string[] {
  const out: string[] = []
  for (const element of splitQuoted(s, ',')) {
    if (element.trim() === '') { out.push('!junk'); continue }
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
