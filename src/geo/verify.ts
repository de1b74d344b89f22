/**
 * Structural verification of a MaxMind DB file before it is put in service, after the MaxMind DB File Format
 * Specification 2.0 (what libmaxminddb's mmdbverify checks): metadata, search tree, the 16-byte separator, and
 * every data record the tree reaches. mmdb-lib itself checks almost nothing (a double of the wrong size, a
 * pointer past the end, or a node count larger than the file only show up as garbage or a throw per lookup), so
 * a broken or truncated file must be refused here, once, off the request path.
 *
 * The walk yields to the event loop every few thousand steps, so verifying a large database while serving
 * does not stall requests.
 */
import { nodeReader, type NodeReader } from './nodes.js'
import { setImmediate as yieldToLoop } from 'node:timers/promises'

const METADATA_MARKER = Buffer.from('abcdef4d61784d696e642e636f6d', 'hex')
/** The spec caps the metadata section at 128 KiB, searched from the end of the file. */
const METADATA_MAX = 128 * 1024
const SEPARATOR = 16
/** Check the clock every this many steps, and yield to the event loop after SLICE_MS of work. */
const CHECK_EVERY = 1024
const SLICE_MS = 5

/** Cooperative pacing: `if (pace.due()) await yieldToLoop()` yields once a slice of work is used up. */
class Pace {
  private n = 0
  private since = performance.now()
  due (): boolean {
    if ((++this.n & (CHECK_EVERY - 1)) !== 0) return false
    const now = performance.now()
    if (now - this.since < SLICE_MS) return false
    this.since = now
    return true
  }
}

export interface MmdbMetadata {
  databaseType: string
  buildEpoch: Date
  ipVersion: 4 | 6
  recordSize: 24 | 28 | 32
  nodeCount: number
  languages: string[]
  description: Record<string, string>
  binaryFormatMajorVersion: number
  binaryFormatMinorVersion: number
}

export class MmdbFormatError extends Error {
  override readonly name = 'MmdbFormatError'
}

function fail (msg: string): never {
  throw new MmdbFormatError(msg)
}

type Value = string | number | bigint | boolean | Buffer | Value[] | { [k: string]: Value }

/**
 * A strict decoder over [start, end) of the buffer: every size, type and pointer is checked, so a broken file
 * throws MmdbFormatError instead of reading outside its section.
 */
class StrictDecoder {
  /** pointer targets already verified (values are shared through pointers; verify each once) */
  private readonly seen = new Set<number>()

  constructor (private readonly db: Buffer, private readonly start: number, private readonly end: number) {}

  /** Verify the value at `offset` (relative to start); returns the offset after it. */
  skip (offset: number, depth = 0): number {
    const next = this.read(offset, false, depth).next
    this.starts_.add(offset)
    return next
  }

  private readonly starts_ = new Set<number>()
  /** whether a top-level value started at this offset (during a front-to-back skip) */
  starts (offset: number): boolean {
    return this.starts_.has(offset)
  }

  decode (offset: number): Value {
    return this.read(offset, true, 0).value
  }

  private byte (abs: number): number {
    const b = this.db[abs]
    if (abs >= this.end || b === undefined) fail(`data runs past the end of its section at byte ${abs}`)
    return b
  }

  private need (abs: number, size: number): void {
    if (abs + size > this.end) fail(`data runs past the end of its section at byte ${abs} (needs ${size} bytes)`)
  }

  // One switch over the format's ten data types (spec, "Data Section"), kept whole so each type's checks read together.
  private read (offset: number, want: boolean, depth: number): { value: Value, next: number } {
    if (depth > 64) fail('data nested too deeply (pointer loop?)')
    let abs = this.start + offset
    if (offset < 0 || abs >= this.end) fail(`data offset ${offset} outside the data section`)
    const ctrl = this.byte(abs++)
    let type = ctrl >> 5
    if (type === 1) { // pointer
      const ss = (ctrl >> 3) & 3
      this.need(abs, ss + 1)
      const v = ctrl & 7
      let target: number
      if (ss === 0) target = (v << 8) | this.byte(abs)
      else if (ss === 1) target = ((v << 16) | this.db.readUInt16BE(abs)) + 2048
      else if (ss === 2) target = ((v << 24) | this.db.readUIntBE(abs, 3)) + 526336
      else target = this.db.readUInt32BE(abs)
      const next = abs + ss + 1 - this.start
      if (this.start + target >= this.end) fail(`pointer to ${target} outside the data section`)
      const targetCtrl = this.byte(this.start + target)
      if (targetCtrl >> 5 === 1) fail(`pointer at ${offset} points to another pointer`)
      if (!want && this.seen.has(target)) return { value: 0, next }
      const r = this.read(target, want, depth + 1)
      this.seen.add(target)
      return { value: r.value, next }
    }
    if (type === 0) { // extended
      type = 7 + this.byte(abs++)
      if (type < 8 || type > 15) fail(`invalid extended type ${type} at data offset ${offset}`)
    }
    let size = ctrl & 0x1f
    if (size === 29) size = 29 + this.byte(abs++)
    else if (size === 30) { this.need(abs, 2); size = 285 + this.db.readUInt16BE(abs); abs += 2 }
    else if (size === 31) { this.need(abs, 3); size = 65821 + this.db.readUIntBE(abs, 3); abs += 3 }
    const rel = (a: number): number => a - this.start
    switch (type) {
      case 2: // utf8_string
      case 4: { // bytes
        this.need(abs, size)
        const value: Value = want ? (type === 2 ? this.db.toString('utf8', abs, abs + size) : Buffer.from(this.db.subarray(abs, abs + size))) : 0
        return { value, next: rel(abs + size) }
      }
      case 3: // double
        if (size !== 8) fail(`double of size ${size} at data offset ${offset} (must be 8)`)
        this.need(abs, 8)
        return { value: want ? this.db.readDoubleBE(abs) : 0, next: rel(abs + 8) }
      case 15: // float
        if (size !== 4) fail(`float of size ${size} at data offset ${offset} (must be 4)`)
        this.need(abs, 4)
        return { value: want ? this.db.readFloatBE(abs) : 0, next: rel(abs + 4) }
      case 5: case 6: case 8: case 9: case 10: { // uint16, uint32, int32, uint64, uint128
        const max = type === 5 ? 2 : type === 6 || type === 8 ? 4 : type === 9 ? 8 : 16
        if (size > max) fail(`integer of type ${type} with size ${size} at data offset ${offset} (max ${max})`)
        this.need(abs, size)
        let value: Value = 0
        if (want) {
          let big = 0n
          for (let i = 0; i < size; i++) big = (big << 8n) | BigInt(this.db[abs + i] ?? 0)
          value = type === 9 || type === 10 ? big : (type === 8 && size === 4 ? this.db.readInt32BE(abs) : Number(big))
        }
        return { value, next: rel(abs + size) }
      }
      case 7: { // map
        const out: Record<string, Value> = {}
        let o = rel(abs)
        for (let i = 0; i < size; i++) {
          const k = this.read(o, true, depth + 1)
          if (typeof k.value !== 'string') fail(`map key at data offset ${o} is not a string`)
          const v = this.read(k.next, want, depth + 1)
          if (want) out[k.value] = v.value
          o = v.next
        }
        return { value: out, next: o }
      }
      case 11: { // array
        const out: Value[] = []
        let o = rel(abs)
        for (let i = 0; i < size; i++) {
          const v = this.read(o, want, depth + 1)
          if (want) out.push(v.value)
          o = v.next
        }
        return { value: out, next: o }
      }
      case 14: // boolean: the size is the value
        if (size > 1) fail(`boolean of size ${size} at data offset ${offset}`)
        return { value: size === 1, next: rel(abs) }
      default: // 12 data cache container, 13 end marker: not allowed in a record
        return fail(`invalid data type ${type} at data offset ${offset}`)
    }
  }
}

function str (m: Record<string, Value>, k: string): string {
  const v = m[k]
  if (typeof v !== 'string') fail(`metadata ${k} missing or not a string`)
  return v
}

function uint (m: Record<string, Value>, k: string): number {
  const v = m[k]
  if (typeof v === 'bigint') return Number(v)
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(`metadata ${k} missing or not an unsigned integer`)
  return v
}

/** Parse and check the metadata section only (cheap). */
export function readMetadata (db: Buffer): { meta: MmdbMetadata, metadataStart: number } {
  const from = Math.max(0, db.length - METADATA_MAX)
  const at = db.lastIndexOf(METADATA_MARKER)
  if (at < from || at < 0) fail('no MaxMind DB metadata marker (truncated, or not an MMDB file)')
  const metadataStart = at
  const dec = new StrictDecoder(db, at + METADATA_MARKER.length, db.length)
  const m = dec.decode(0)
  if (typeof m !== 'object' || m === null || Array.isArray(m) || Buffer.isBuffer(m)) fail('metadata is not a map')
  const major = uint(m, 'binary_format_major_version')
  if (major !== 2) fail(`unsupported binary format major version ${major}`)
  const recordSize = uint(m, 'record_size')
  if (recordSize !== 24 && recordSize !== 28 && recordSize !== 32) fail(`unsupported record size ${recordSize}`)
  const ipVersion = uint(m, 'ip_version')
  if (ipVersion !== 4 && ipVersion !== 6) fail(`unsupported ip_version ${ipVersion}`)
  const languages = Array.isArray(m.languages) ? m.languages.filter((l): l is string => typeof l === 'string') : []
  const description: Record<string, string> = {}
  const d = m.description
  if (typeof d === 'object' && d !== null && !Array.isArray(d) && !Buffer.isBuffer(d)) {
    for (const [k, v] of Object.entries(d)) if (typeof v === 'string') description[k] = v
  }
  return {
    meta: {
      databaseType: str(m, 'database_type'),
      buildEpoch: new Date(uint(m, 'build_epoch') * 1000),
      ipVersion,
      recordSize,
      nodeCount: uint(m, 'node_count'),
      languages,
      description,
      binaryFormatMajorVersion: major,
      binaryFormatMinorVersion: m.binary_format_minor_version === undefined ? 0 : uint(m, 'binary_format_minor_version')
    },
    metadataStart
  }
}

/**
 * Verify a whole database. Resolves with its metadata, or rejects with MmdbFormatError saying what is wrong.
 * `deep: false` checks only the metadata, the tree size and the separator (for a file whose integrity npm
 * already checked against the lockfile).
 */
export async function verifyMmdb (db: Buffer, opts: { deep?: boolean } = {}): Promise<MmdbMetadata> {
  const { meta, metadataStart } = readMetadata(db)
  const nodeBytes = meta.recordSize / 4
  const treeSize = meta.nodeCount * nodeBytes
  if (meta.nodeCount === 0) fail('node_count is 0')
  if (treeSize + SEPARATOR > metadataStart) {
    fail(`node_count ${meta.nodeCount} needs a ${treeSize}-byte search tree but the file has only ${metadataStart} bytes before its metadata (invalid node count, or truncated file)`)
  }
  for (let i = treeSize; i < treeSize + SEPARATOR; i++) {
    if (db[i] !== 0) fail(`data section separator at byte ${treeSize} is not 16 zero bytes (invalid node count?)`)
  }
  if (opts.deep === false) return meta
  const dataStart = treeSize + SEPARATOR
  const nodes = nodeReader(db, meta.recordSize)
  const records = await treeRecords(nodes, meta.nodeCount, metadataStart - dataStart)
  await checkAcyclic(nodes, meta.nodeCount, meta.ipVersion === 6 ? 128 : 32)
  await checkRecordsStartValues(db, dataStart, metadataStart, records)
  return meta
}

/** Every data record the tree points at (offsets into the data section); a pointer past the section fails. */
async function treeRecords ({ left, right }: NodeReader, n: number, dataSize: number): Promise<Set<number>> {
  const records = new Set<number>()
  const pace = new Pace()
  const check = (node: number, side: string, r: number): void => {
    if (r < n || r === n) return
    const off = r - n - SEPARATOR
    if (off < 0 || off >= dataSize) fail(`search tree node ${node} ${side} record ${r} points outside the data section`)
    records.add(off)
  }
  for (let i = 0; i < n; i++) {
    check(i, 'left', left(i))
    check(i, 'right', right(i))
    if (pace.due()) await yieldToLoop()
  }
  return records
}

/** The tree must be acyclic and no deeper than the address (32 or 128 bits): a loop sends lookups in circles. */
async function checkAcyclic ({ left, right }: NodeReader, n: number, bits: number): Promise<void> {
  const pace = new Pace()
  const state = new Uint8Array(n) // 0 unseen, 1 being expanded (on the current path), 2 done
  const height = new Uint8Array(n)
  const stack: number[] = [0]
  while (stack.length > 0) {
    const node = stack[stack.length - 1] ?? 0
    const l = left(node)
    const r = right(node)
    if (state[node] === 0) {
      state[node] = 1
      for (const c of [l, r]) {
        if (c >= n) continue
        if (state[c] === 1) fail(`search tree loops back to node ${c} from node ${node}; the search tree is corrupt`)
        if (state[c] === 0) stack.push(c)
      }
    } else {
      stack.pop()
      if (state[node] === 1) {
        const h = 1 + Math.max(l < n ? (height[l] ?? 0) : 0, r < n ? (height[r] ?? 0) : 0)
        if (h > bits) fail(`search tree is deeper than ${bits} bits below node ${node}; the search tree is corrupt`)
        height[node] = h
        state[node] = 2
      }
    }
    if (pace.due()) await yieldToLoop()
  }
}

/**
 * Decode the data section front to back, as its writer laid it out: every record the tree points at must start
 * one of its top-level values (a tree record into the middle of a value is a corrupt tree), and be a map.
 */
async function checkRecordsStartValues (db: Buffer, dataStart: number, metadataStart: number, records: ReadonlySet<number>): Promise<void> {
  const pace = new Pace()
  const dataSize = metadataStart - dataStart
  const dec = new StrictDecoder(db, dataStart, metadataStart)
  let off = 0
  let found = 0
  while (off < dataSize) {
    if (records.has(off)) {
      const type = (db[dataStart + off] ?? 0) >> 5
      if (type !== 7) fail(`search tree points at data offset ${off}, which is not a map (type ${type})`)
      found++
    }
    off = dec.skip(off)
    if (pace.due()) await yieldToLoop()
  }
  if (found !== records.size) {
    const stray = [...records].find((o) => !dec.starts(o))
    fail(`search tree points into the middle of a data record (data offset ${stray ?? '?'}); the search tree is corrupt`)
  }
  if (records.size === 0) fail('the search tree holds no data record')
}
