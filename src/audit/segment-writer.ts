/**
 * The open segment and rotation: sealed records are appended to `<writer>_<day>_<firstSeq>.jsonl` with one
 * write + fdatasync per batch; a new segment starts on a new UTC day or past rotateBytes, and the closed one gets
 * its final digest. A failed write is cut back off the file, so the next attempt never appends after half a line.
 */
import { createHash, type Hash } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { segmentFile } from './segments.js'
import { fsyncDir, writeAll } from './files.js'
import type { DigestChain, DigestSubject } from './digests.js'
import type { Item } from './seal.js'
import { lastRecord } from './recover.js'

/** Bytes of the newest durable records kept to write again if a repaired filesystem lost them (see reopen). */
const RECENT_BYTES = 1 << 20

interface OpenSegment extends DigestSubject {
  fh: FileHandle
  day: string
  hasher: Hash
}

/** The items' lines, one buffer. */
function lineBytes (items: readonly Item[]): Buffer {
  let n = 0
  for (const i of items) n += i.bytes
  const buf = Buffer.allocUnsafe(n)
  let at = 0
  for (const i of items) {
    at += i.json.copy(buf, at, 0, i.json.length - 1)
    at += buf.write(i.tail, at, 'latin1')
  }
  return buf
}

export class SegmentWriter {
  #seg: OpenSegment | null = null
  /** a closed segment whose final digest could not be written yet (retried before the next write) */
  #toSeal: OpenSegment | null = null
  /** the last write failed: reopen the file before the next one (the mount may have been replaced under us) */
  #reopen = false
  /** seq of the last record written and fdatasync'd */
  durableSeq = 0
  /**
   * The open segment's newest durable bytes (at least RECENT_BYTES once written), as the buffers that were written,
   * oldest first. Buffers, not the records' strings: they live outside the JS heap, so keeping a megabyte of
   * records for a few hundred milliseconds costs the garbage collector nothing (as strings, every one was copied
   * into the old generation and collected there).
   */
  #recent: Buffer[] = []
  #recentBytes = 0
  /** called when records made durable had to be written again after a repair (recorded in the chain) */
  onRewrite: ((detail: { segment: string, records: number, bytes: number }) => void) | null = null

  constructor (readonly dir: string, readonly writer: string, readonly rotateBytes: number, readonly digests: DigestChain) {}

  /** Name of the segment being written (retention never deletes it). */
  get current (): string | null { return this.#seg?.name ?? null }

  /** Write a batch in order, rotating as needed; `durableSeq` moves forward as each part is made durable. */
  async write (batch: Item[]): Promise<void> {
    if (this.#reopen && this.#seg !== null) await this.#reopenSegment(this.#seg)
    this.#reopen = false
    await this.#sealClosed()
    let pending: Item[] = []
    let pendingBytes = 0
    for (const item of batch) {
      const seg = this.#seg
      const full = seg !== null && seg.records + pending.length > 0 && seg.bytes + pendingBytes + item.bytes > this.rotateBytes
      if (seg === null || seg.day !== item.day || full) {
        if (seg !== null) {
          await this.#writeItems(seg, pending)
          pending = []
          pendingBytes = 0
          await this.finish()
        }
        this.#seg = await this.#open(item.day, item.seq)
      }
      pending.push(item)
      pendingBytes += item.bytes
    }
    const seg = this.#seg
    if (seg !== null && pending.length > 0) await this.#writeItems(seg, pending)
  }

  /** A periodic digest of the open segment, when it grew since the last one. */
  async digestOpen (): Promise<void> {
    const seg = this.#seg
    if (seg !== null && seg.bytes > seg.digestedBytes) await this.digests.write(seg, false)
  }

  /** Close the open segment and seal it with a final digest. */
  async finish (): Promise<void> {
    const seg = this.#seg
    if (seg === null) return
    this.#seg = null
    await seg.fh.close().catch(() => {})
    if (seg.records > 0) this.#toSeal = seg
    await this.#sealClosed()
  }

  /**
   * Close the open segment's file without sealing it (a writer giving up at close: its disk failed). The next start
   * recovers the segment as after a crash, and seals it then.
   */
  async release (): Promise<void> {
    const seg = this.#seg
    this.#seg = null
    this.#toSeal = null
    await seg?.fh.close().catch(() => {})
  }

  #remember (buf: Buffer): void {
    this.#recent.push(buf)
    this.#recentBytes += buf.length
    while (this.#recent.length > 1 && this.#recentBytes - (this.#recent[0] as Buffer).length >= RECENT_BYTES) {
      this.#recentBytes -= (this.#recent.shift() as Buffer).length
    }
  }

  /** The kept records, oldest first: each line's bytes (newline included), seq and hash. */
  #recentRecords (): Array<{ bytes: Buffer, seq: number, hash: string }> {
    const all = Buffer.concat(this.#recent)
    const out: Array<{ bytes: Buffer, seq: number, hash: string }> = []
    let from = 0
    while (from < all.length) {
      const nl = all.indexOf(0x0a, from)
      const end = nl === -1 ? all.length : nl + 1
      const bytes = all.subarray(from, end)
      const r = JSON.parse(bytes.toString('utf8')) as { seq: number, hash: string }
      out.push({ bytes, seq: r.seq, hash: r.hash })
      from = end
    }
    return out
  }

  async #sealClosed (): Promise<void> {
    const seg = this.#toSeal
    if (seg === null) return
    await this.digests.write(seg, true)
    this.#toSeal = null
  }

  async #writeItems (seg: OpenSegment, items: Item[]): Promise<void> {
    if (items.length === 0) return
    const buf = lineBytes(items)
    try {
      await writeAll(seg.fh, buf)
      await seg.fh.datasync()
    } catch (err) {
      // Never leave a partial line behind: the next attempt would append after it and break the chain.
      await seg.fh.truncate(seg.bytes).catch(() => {})
      this.#reopen = true
      throw err
    }
    seg.hasher.update(buf)
    seg.bytes += buf.length
    seg.records += items.length
    this.#remember(buf)
    const last = items[items.length - 1]
    if (last !== undefined) {
      seg.lastSeq = last.seq
      seg.lastHash = last.hash
      this.durableSeq = last.seq
    }
  }

  /**
   * After a failed write: open the segment again by its path. A filesystem that turned read-only (ext4 on an
   * error) stays so until it is unmounted; the repair mounts it again on the same path, and the old descriptor
   * would keep failing. What was made durable must still be there; anything after it (half a line) is cut off.
   */
  async #reopenSegment (seg: OpenSegment): Promise<void> {
    const path = join(this.dir, seg.name)
    const fh = await open(path, 'a')
    try {
      const size = (await fh.stat()).size
      if (size > seg.bytes) await fh.truncate(seg.bytes)
      if (size < seg.bytes) await this.#rewriteLost(fh, seg, size)
    } catch (err) {
      await fh.close()
      throw err
    }
    await seg.fh.close().catch(() => {})
    seg.fh = fh
  }

  /**
   * The repaired filesystem lost the tail of what it had acknowledged (ext4 can, on the error that turned it
   * read-only). When the loss is whole records among the newest ones kept, and the file's last line is the record
   * before them, they are written again (same bytes, so the chain and digests hold) and the rewrite is recorded.
   */
  async #rewriteLost (fh: FileHandle, seg: OpenSegment, size: number): Promise<void> {
    const recent = this.#recentRecords()
    let bytes = 0
    let k = recent.length
    while (k > 0 && bytes < seg.bytes - size) bytes += (recent[--k] as (typeof recent)[number]).bytes.length
    const lost = recent.slice(k)
    const before = k > 0 ? recent[k - 1] : undefined
    const tip = await lastRecord(join(this.dir, seg.name))
    // The file must end exactly on the record before the lost ones (or be empty when they open the segment).
    const first = lost[0]
    const fits = first !== undefined && bytes === seg.bytes - size &&
      (before !== undefined ? tip?.seq === before.seq && tip.hash === before.hash : first.seq === seg.firstSeq && tip === null)
    if (!fits) throw new Error(`audit: ${seg.name} holds ${size} bytes, ${seg.bytes} were made durable, and the loss cannot be repaired from memory; run \`geogate audit verify\``)
    await writeAll(fh, Buffer.concat(lost.map((i) => i.bytes)))
    await fh.datasync()
    this.onRewrite?.({ segment: seg.name, records: lost.length, bytes })
  }

  async #open (day: string, firstSeq: number): Promise<OpenSegment> {
    this.#recent = []
    this.#recentBytes = 0
    const name = segmentFile(this.writer, day, firstSeq)
    // 'ax': a segment is never reopened or overwritten once another took its place.
    const fh = await open(join(this.dir, name), 'ax')
    try {
      await fsyncDir(this.dir)
    } catch (err) {
      await fh.close()
      throw err
    }
    return { name, fh, day, firstSeq, lastSeq: firstSeq - 1, lastHash: '', bytes: 0, records: 0, hasher: createHash('sha256'), digestedBytes: 0 }
  }
}
