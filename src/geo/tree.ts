/**
 * The search-tree walk, to find which data record answers for an address without decoding it: the record's
 * offset is the key of the per-layer answer cache, so a hit costs a walk and a Map lookup, and mmdb-lib decodes
 * a record only the first time it is seen. Same walk as mmdb-lib's (MaxMind DB spec, "Searching for an IP").
 * Addresses come parsed (net/address.ts): an IPv4 value or the 16 bytes of an IPv6 address.
 */
import type { MmdbMetadata } from './verify.js'
import { nodeReader } from './nodes.js'

const SEPARATOR = 16
/**
 * IPv4 walks start from a table of the node reached by each address's first PREFIX_BITS bits (256 KB per database,
 * built at load): 16 steps of the 32, each a dependent read from a tree of megabytes (a cache and TLB miss apiece
 * under load), become one.
 */
const PREFIX_BITS = 16

export class TreeWalker {
  private readonly nodeCount: number
  private readonly ipv4Start: number
  private readonly left: (node: number) => number
  private readonly right: (node: number) => number
  /** the node (or terminal record) reached from ipv4Start by each value of an address's first PREFIX_BITS bits */
  private readonly v4Prefix: Uint32Array

  constructor (db: Buffer, meta: MmdbMetadata) {
    this.nodeCount = meta.nodeCount
    const nodes = nodeReader(db, meta.recordSize)
    this.left = nodes.left
    this.right = nodes.right
    // IPv4 addresses in an IPv6 tree start at the node reached by 96 zero bits (::/96)
    let node = 0
    if (meta.ipVersion === 6) for (let i = 0; i < 96 && node < this.nodeCount; i++) node = this.left(node)
    this.ipv4Start = node
    this.v4Prefix = this.prefixTable()
  }

  /** Each node down to depth PREFIX_BITS visited once; a terminal above it fills its whole range of prefixes. */
  private prefixTable (): Uint32Array {
    const table = new Uint32Array(1 << PREFIX_BITS)
    const n = this.nodeCount
    const { left, right } = this
    // node, the first prefix of its range, the range's size (depth: PREFIX_BITS - log2 size); at most 17 deep
    const fill = (node: number, from: number, size: number): void => {
      if (node >= n || size === 1) {
        if (size === 1) table[from] = node
        else table.fill(node, from, from + size)
        return
      }
      const half = size >>> 1
      fill(left(node), from, half)
      fill(right(node), from + half, half)
    }
    fill(this.ipv4Start, 0, 1 << PREFIX_BITS)
    return table
  }

  /** Data-section offset of the record answering for this IPv4 address, or -1 when none does. */
  findV4 (addr: number): number {
    let node = this.v4Prefix[addr >>> (32 - PREFIX_BITS)] as number
    const n = this.nodeCount
    for (let bit = 31 - PREFIX_BITS; bit >= 0 && node < n; bit--) {
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
