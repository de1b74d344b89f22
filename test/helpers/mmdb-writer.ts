/**
 * A small MaxMind DB writer for tests (MaxMind DB File Format Specification 2.0): binary search tree, 16-byte
 * data section separator, data section, metadata. No npm package writes MMDB files, so tests build their own
 * databases here; what it writes is read back with the `maxmind` reader in test/geo/mmdb-writer.test.ts.
 *
 * Values: strings → utf8_string, booleans → boolean, integers 0..2^32-1 → uint32, negative integers → int32,
 * other numbers → double, bigint → uint64 (uint128 when wider), Buffer → bytes, arrays → array, objects → map.
 * Use `typed()` to force another type (uint16, float, double, int32, uint64, uint128).
 */
import { writeFile, rename } from 'node:fs/promises'
import { isIPv4, isIPv6 } from 'node:net'

export type MmdbScalarType = 'double' | 'float' | 'uint16' | 'uint32' | 'int32' | 'uint64' | 'uint128'

export class MmdbTyped {
  constructor (readonly type: MmdbScalarType, readonly value: number | bigint) {}
}

export type MmdbValue = string | number | boolean | bigint | Buffer | MmdbTyped | MmdbValue[] | { [key: string]: MmdbValue }
export type MmdbMap = { [key: string]: MmdbValue }

export function typed (type: MmdbScalarType, value: number | bigint): MmdbTyped {
  return new MmdbTyped(type, value)
}

export interface MmdbEntry {
  /** CIDR; IPv4 networks go to ::a.b.c.d/(96+len) in an IPv6 tree, as MaxMind's writer does */
  network: string
  data: MmdbMap
}

export interface MmdbOptions {
  databaseType: string
  /** 6 (default) or 4 */
  ipVersion?: 4 | 6
  /** build_epoch: a Date or seconds since the epoch */
  buildEpoch: Date | number
  /** chosen to fit when absent */
  recordSize?: 24 | 28 | 32
  description?: Record<string, string>
  languages?: string[]
  /** IPv6 trees only: alias ::ffff:0:0/96 and 2002::/16 to the IPv4 subtree (default true, as MaxMind does) */
  ipv4Aliases?: boolean
}

// ---- search tree ----------------------------------------------------------------------------------------

interface TreeNode { left: Child, right: Child }
/** a node, a data index (number), or null for "no data" */
type Child = TreeNode | number | null

function isNode (c: Child): c is TreeNode {
  return c !== null && typeof c === 'object'
}

/** Network bits, most significant first, and prefix length, within a tree of `treeBits` (32 or 128). */
export function networkBits (cidr: string, treeBits: 32 | 128): { bits: Uint8Array, prefix: number } {
  const slash = cidr.lastIndexOf('/')
  const addr = slash === -1 ? cidr : cidr.slice(0, slash)
  let bytes: number[]
  let width: number
  if (isIPv4(addr)) {
    bytes = addr.split('.').map(Number)
    width = 32
  } else if (isIPv6(addr)) {
    bytes = ipv6Bytes(addr)
    width = 128
  } else {
    throw new Error(`mmdb-writer: not an IP network: ${cidr}`)
  }
  const prefix = slash === -1 ? width : Number(cidr.slice(slash + 1))
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > width) throw new Error(`mmdb-writer: bad prefix length: ${cidr}`)
  if (width === 128 && treeBits === 32) throw new Error(`mmdb-writer: IPv6 network ${cidr} in an IPv4 database`)
  const all = new Uint8Array(treeBits)
  const offset = treeBits - width // IPv4 in an IPv6 tree sits at ::/96
  for (let i = 0; i < width; i++) {
    const byte = bytes[i >> 3] ?? 0
    all[offset + i] = (byte >> (7 - (i & 7))) & 1
  }
  return { bits: all, prefix: offset + prefix }
}

function ipv6Bytes (addr: string): number[] {
  let s = addr
  const tail: number[] = []
  const lastColon = s.lastIndexOf(':')
  if (s.includes('.')) { // embedded dotted quad
    for (const part of s.slice(lastColon + 1).split('.')) tail.push(Number(part))
    s = s.slice(0, lastColon + 1) + '0:0'
  }
  const [head = '', rest] = s.split('::', 2)
  const h = head === '' ? [] : head.split(':')
  const r = rest === undefined ? [] : (rest === '' ? [] : rest.split(':'))
  const groups = rest === undefined ? h : [...h, ...new Array<string>(8 - h.length - r.length).fill('0'), ...r]
  const out: number[] = []
  for (const g of groups) {
    const v = parseInt(g, 16)
    out.push(v >> 8, v & 0xff)
  }
  if (tail.length === 4) out.splice(12, 4, ...tail)
  return out
}

/** Replace whatever is at bits[0..prefix) with `value`, splitting leaves on the way down. */
function setAt (root: TreeNode, bits: Uint8Array, prefix: number, value: Child): void {
  if (prefix === 0) throw new Error('mmdb-writer: a /0 network cannot be stored at the root')
  let node = root
  for (let i = 0; i < prefix - 1; i++) {
    const side = bits[i] === 1 ? 'right' : 'left'
    let next = node[side]
    if (!isNode(next)) {
      next = { left: next, right: next }
      node[side] = next
    }
    node = next
  }
  node[bits[prefix - 1] === 1 ? 'right' : 'left'] = value
}

function nodeAt (root: TreeNode, bits: Uint8Array, prefix: number): Child {
  let c: Child = root
  for (let i = 0; i < prefix; i++) {
    if (!isNode(c)) return c
    c = bits[i] === 1 ? c.right : c.left
  }
  return c
}

// ---- data section -----------------------------------------------------------------------------------------

const TYPE = { pointer: 1, string: 2, double: 3, bytes: 4, uint16: 5, uint32: 6, map: 7, int32: 8, uint64: 9, uint128: 10, array: 11, boolean: 14, float: 15 } as const

function control (type: number, size: number): Buffer {
  let first: number
  let extra: Buffer
  if (size < 29) {
    first = size
    extra = Buffer.alloc(0)
  } else if (size < 29 + 256) {
    first = 29
    extra = Buffer.from([size - 29])
  } else if (size < 285 + 65536) {
    first = 30
    extra = Buffer.alloc(2)
    extra.writeUInt16BE(size - 285)
  } else {
    first = 31
    extra = Buffer.alloc(3)
    extra.writeUIntBE(size - 65821, 0, 3)
  }
  // types above 7 are "extended": type bits 0, and the next byte holds type - 7
  const head = type <= 7 ? Buffer.from([(type << 5) | first]) : Buffer.from([first, type - 7])
  return Buffer.concat([head, extra])
}

function uintBytes (value: bigint, max: number): Buffer {
  if (value < 0n) throw new Error('mmdb-writer: negative unsigned integer')
  const bytes: number[] = []
  let v = value
  while (v > 0n) {
    bytes.unshift(Number(v & 0xffn))
    v >>= 8n
  }
  if (bytes.length > max) throw new Error(`mmdb-writer: integer does not fit in ${max} bytes`)
  return Buffer.from(bytes)
}

export function encodeValue (v: MmdbValue): Buffer {
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8')
    return Buffer.concat([control(TYPE.string, b.length), b])
  }
  if (typeof v === 'boolean') return control(TYPE.boolean, v ? 1 : 0)
  if (typeof v === 'bigint') return v < (1n << 64n) ? encodeValue(typed('uint64', v)) : encodeValue(typed('uint128', v))
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return encodeValue(typed('uint32', v))
    if (Number.isInteger(v) && v < 0 && v >= -0x80000000) return encodeValue(typed('int32', v))
    return encodeValue(typed('double', v))
  }
  if (Buffer.isBuffer(v)) return Buffer.concat([control(TYPE.bytes, v.length), v])
  if (v instanceof MmdbTyped) return encodeTyped(v)
  if (Array.isArray(v)) return Buffer.concat([control(TYPE.array, v.length), ...v.map(encodeValue)])
  const keys = Object.keys(v)
  const parts = [control(TYPE.map, keys.length)]
  for (const k of keys) {
    const item = v[k]
    if (item === undefined) throw new Error(`mmdb-writer: undefined value for key ${k}`)
    parts.push(encodeValue(k), encodeValue(item))
  }
  return Buffer.concat(parts)
}

function encodeTyped (t: MmdbTyped): Buffer {
  switch (t.type) {
    case 'double': {
      const b = Buffer.alloc(8)
      b.writeDoubleBE(Number(t.value))
      return Buffer.concat([control(TYPE.double, 8), b])
    }
    case 'float': {
      const b = Buffer.alloc(4)
      b.writeFloatBE(Number(t.value))
      return Buffer.concat([control(TYPE.float, 4), b])
    }
    case 'int32': {
      const n = Number(t.value)
      if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) throw new Error('mmdb-writer: int32 out of range')
      const b = Buffer.alloc(4)
      b.writeInt32BE(n)
      return Buffer.concat([control(TYPE.int32, 4), b])
    }
    case 'uint16': case 'uint32': case 'uint64': case 'uint128': {
      const max = { uint16: 2, uint32: 4, uint64: 8, uint128: 16 }[t.type]
      const b = uintBytes(BigInt(t.value), max)
      return Buffer.concat([control(TYPE[t.type], b.length), b])
    }
  }
}

// ---- file -------------------------------------------------------------------------------------------------

const METADATA_MARKER = Buffer.from('abcdef4d61784d696e642e636f6d', 'hex') // "\xAB\xCD\xEFMaxMind.com"

/** Build an MMDB file in memory. Later entries win where networks overlap (a more specific one splits an earlier one). */
export function buildMmdb (entries: readonly MmdbEntry[], opts: MmdbOptions): Buffer {
  const ipVersion = opts.ipVersion ?? 6
  const treeBits = ipVersion === 6 ? 128 : 32
  const root: TreeNode = { left: null, right: null }

  // data section: each distinct encoded record once
  const dataChunks: Buffer[] = []
  const dataIndex = new Map<string, number>()
  const dataOffset: number[] = []
  let dataSize = 0
  const byObject = new Map<MmdbMap, number>() // the same record object shared by many networks: encode once
  const dataFor = (m: MmdbMap): number => {
    const same = byObject.get(m)
    if (same !== undefined) return same
    const enc = encodeValue(m)
    const key = enc.toString('latin1')
    const known = dataIndex.get(key)
    if (known !== undefined) {
      byObject.set(m, known)
      return known
    }
    const idx = dataOffset.length
    byObject.set(m, idx)
    dataOffset.push(dataSize)
    dataChunks.push(enc)
    dataSize += enc.length
    dataIndex.set(key, idx)
    return idx
  }

  for (const e of entries) {
    const { bits, prefix } = networkBits(e.network, treeBits)
    setAt(root, bits, prefix, dataFor(e.data))
  }

  if (ipVersion === 6 && opts.ipv4Aliases !== false) {
    const v4 = networkBits('::/96', 128)
    const ipv4Root = nodeAt(root, v4.bits, v4.prefix)
    for (const alias of ['::ffff:0:0/96', '2002::/16']) {
      const a = networkBits(alias, 128)
      setAt(root, a.bits, a.prefix, ipv4Root)
    }
  }

  // number the nodes breadth-first (shared alias subtrees once)
  const order: TreeNode[] = []
  const numbers = new Map<TreeNode, number>()
  const queue: TreeNode[] = [root]
  numbers.set(root, 0)
  for (let qi = 0; qi < queue.length; qi++) {
    const n = queue[qi] as TreeNode
    order.push(n)
    for (const c of [n.left, n.right]) {
      if (isNode(c) && !numbers.has(c)) {
        numbers.set(c, numbers.size)
        queue.push(c)
      }
    }
  }
  const nodeCount = order.length
  const recordValue = (c: Child): number => {
    if (c === null) return nodeCount
    if (typeof c === 'number') return nodeCount + 16 + (dataOffset[c] ?? 0)
    const n = numbers.get(c)
    if (n === undefined) throw new Error('mmdb-writer: unnumbered node')
    return n
  }
  const maxRecord = nodeCount + 16 + dataSize
  const recordSize = opts.recordSize ?? (maxRecord < 2 ** 24 ? 24 : maxRecord < 2 ** 28 ? 28 : 32)
  if (maxRecord >= 2 ** recordSize) throw new Error(`mmdb-writer: record size ${recordSize} too small`)
  const nodeBytes = recordSize / 4
  const tree = Buffer.alloc(nodeCount * nodeBytes)
  order.forEach((n, i) => {
    const l = recordValue(n.left)
    const r = recordValue(n.right)
    const o = i * nodeBytes
    if (recordSize === 24) {
      tree.writeUIntBE(l, o, 3)
      tree.writeUIntBE(r, o + 3, 3)
    } else if (recordSize === 28) {
      tree.writeUIntBE(l & 0xffffff, o, 3)
      tree[o + 3] = ((l >>> 24) << 4) | (r >>> 24)
      tree.writeUIntBE(r & 0xffffff, o + 4, 3)
    } else {
      tree.writeUInt32BE(l, o)
      tree.writeUInt32BE(r, o + 4)
    }
  })

  const buildEpoch = typeof opts.buildEpoch === 'number' ? opts.buildEpoch : Math.floor(opts.buildEpoch.getTime() / 1000)
  const metadata = encodeValue({
    binary_format_major_version: typed('uint16', 2),
    binary_format_minor_version: typed('uint16', 0),
    build_epoch: typed('uint64', BigInt(buildEpoch)),
    database_type: opts.databaseType,
    description: opts.description ?? { en: `${opts.databaseType} test database` },
    ip_version: typed('uint16', ipVersion),
    languages: opts.languages ?? ['en'],
    node_count: typed('uint32', nodeCount),
    record_size: typed('uint16', recordSize)
  })
  return Buffer.concat([tree, Buffer.alloc(16), ...dataChunks, METADATA_MARKER, metadata])
}

/** Write atomically (temp file + rename), as geoipupdate does, so a watcher never sees half a file. */
export async function writeMmdb (path: string, entries: readonly MmdbEntry[], opts: MmdbOptions): Promise<string> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`
  await writeFile(tmp, buildMmdb(entries, opts))
  await rename(tmp, path)
  return path
}
