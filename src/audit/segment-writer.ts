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

interface OpenSegment extends DigestSubject {
  fh: FileHandle
  day: string
  hasher: Hash
}

export class SegmentWriter {
  #seg: OpenSegment | null = null
  /** a closed segment whose final digest could not be written yet (retried before the next write) */
  #toSeal: OpenSegment | null = null
  /** the last write failed: reopen the file before the next one (the mount may have been replaced under us) */
  #reopen = false
  /** seq of the last record written and fdatasync'd */
  durableSeq = 0

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

  async #sealClosed (): Promise<void> {
    const seg = this.#toSeal
    if (seg === null) return
    await this.digests.write(seg, true)
    this.#toSeal = null
  }

  async #writeItems (seg: OpenSegment, items: Item[]): Promise<void> {
    if (items.length === 0) return
    const buf = Buffer.from(items.map((i) => i.line).join(''))
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
    const size = (await fh.stat()).size
    if (size < seg.bytes) {
      await fh.close()
      throw new Error(`audit: ${seg.name} holds ${size} bytes, ${seg.bytes} were made durable; the filesystem lost records — run \`geogate audit verify\``)
    }
    if (size > seg.bytes) await fh.truncate(seg.bytes)
    await seg.fh.close().catch(() => {})
    seg.fh = fh
  }

  async #open (day: string, firstSeq: number): Promise<OpenSegment> {
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
