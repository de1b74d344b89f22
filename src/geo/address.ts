import { isIPv4, isIPv6 } from 'node:net'

export interface LookupAddress {
  ip: string
  version: 4 | 6
}

/** The eight 16-bit groups of a valid IPv6 address (an embedded dotted quad becomes the last two). */
function groups (ip: string): number[] {
  const s = ip.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`)
  const [head = '', rest] = s.split('::', 2)
  const h = head === '' ? [] : head.split(':')
  const r = rest === undefined || rest === '' ? [] : rest.split(':')
  const mid = rest === undefined ? [] : new Array<string>(Math.max(0, 8 - h.length - r.length)).fill('0')
  return [...h, ...mid, ...r].map((g) => parseInt(g, 16))
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
  if (pct !== -1) s = s.slice(0, pct)
  if (isIPv4(s)) return { ip: s, version: 4 }
  if (!isIPv6(s)) return null
  if (/ffff/i.test(s)) {
    const g = groups(s)
    if (g.length === 8 && g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
      const a = g[6] ?? 0
      const b = g[7] ?? 0
      return { ip: `${a >> 8}.${a & 0xff}.${b >> 8}.${b & 0xff}`, version: 4 }
    }
  }
  return { ip: s, version: 6 }
}
