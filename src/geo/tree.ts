/**
 * The search-tree walk, to find which data record answers for an address without decoding it: the record's
 * offset is the key of the per-layer answer cache, so a hit costs a walk and a Map lookup, and mmdb-lib decodes
 * a record only the first time it is seen. Same walk as mmdb-lib's (MaxMind DB spec, "Searching for an IP").
 */
import type { MmdbMetadata } from './verify.js'
import { nodeReader } from './nodes.js'

const SEPARATOR = 16

/** A dotted-quad IPv4 as an unsigned 32-bit number, or -1 (same grammar as net.isIPv4: no leading zeros). */
export function parseIPv4 (s: string): number {
  let value = 0
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 46) { // '.'
      if (digits === 0 || dots === 3) return -1
      value = value * 256 + octet
      octet = 0
      digits = 0
      dots++
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1 // leading zero
      octet = octet * 10 + (c - 48)
      if (octet > 255) return -1
      digits++
    } else {
      return -1
    }
  }
  if (dots !== 3 || digits === 0) return -1
  return value * 256 + octet
}

/** The 16 bytes of a valid IPv6 address (validate first: net.isIPv6; zone ids already removed). */
export function parseIPv6 (s: string): Uint8Array {
  let text = s
  if (text.includes('.')) { // trailing dotted quad → two groups
    const colon = text.lastIndexOf(':')
    const v4 = parseIPv4(text.slice(colon + 1))
    text = `${text.slice(0, colon + 1)}${((v4 >>> 16) & 0xffff).toString(16)}:${(v4 & 0xffff).toString(16)}`
  }
  // one pass over the characters: groups before '::' fill from the front, groups after it are shifted to the end
  const groups = new Uint16Array(8)
  let count = 0
  let gap = -1
  let value = 0
  let digits = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 58) { // ':'
      if (digits > 0) { groups[count++] = value; value = 0; digits = 0 }
      if (text.charCodeAt(i + 1) === 58) { gap = count; i++ }
    } else {
      value = (value << 4) | (c <= 57 ? c - 48 : (c | 32) - 87)
      digits++
    }
  }
  if (digits > 0) groups[count++] = value
  const out = new Uint8Array(16)
  const shift = gap === -1 ? 0 : 8 - count
  for (let g = 0; g < count; g++) {
    const at = gap !== -1 && g >= gap ? g + shift : g
    out[at * 2] = (groups[g] ?? 0) >> 8
    out[at * 2 + 1] = (groups[g] ?? 0) & 255
  }
  return out
}

export class TreeWalker {
  private readonly nodeCount: number
  private readonly ipv4Start: number
  private readonly left: (node: number) => number
  private readonly right: (node: number) => number

  constructor (db: Buffer, meta: MmdbMetadata) {
    this.nodeCount = meta.nodeCount
    const nodes = nodeReader(db, meta.recordSize)
    this.left = nodes.left
    this.right = nodes.right
    // IPv4 addresses in an IPv6 tree start at the node reached by 96 zero bits (::/96)
    let node = 0
    if (meta.ipVersion === 6) for (let i = 0; i < 96 && node < this.nodeCount; i++) node = this.left(node)
    this.ipv4Start = node
  }

  /** Data-section offset of the record answering for this IPv4 address, or -1 when none does. */
  findV4 (addr: number): number {
    let node = this.ipv4Start
    const n = this.nodeCount
    for (let bit = 31; bit >= 0 && node < n; bit--) {
      node = ((addr >>> bit) & 1) === 1 ? this.right(node) : this.left(node)
    }
    return node > n ? node - n - SEPARATOR : -1
  }

  /** Same for an IPv6 address (16 bytes). */
  findV6 (bytes: Uint8Array): number {
    let node = 0
    const n = this.nodeCount
    for (let i = 0; i < 128 && node < n; i++) {
      node = (((bytes[i >> 3] ?? 0) >> (7 - (i & 7))) & 1) === 1 ? this.right(node) : this.left(node)
    }
    return node > n ? node - n - SEPARATOR : -1
  }
}
