/**
 * The in-flight journal, `<writer>.inflight.jsonl`: the write-ahead half of the audit log. A request's entry is
 * appended and made durable (O_DSYNC) BEFORE the request is forwarded (group commit: every begin queued while the
 * previous write ran shares the next one), so a crash at any instant after the backend may have seen a request leaves its
 * trace here. Its final record in the chain makes the entry obsolete; on the next start, `leftovers` reads what
 * is still open and drops every requestId that does have a record in the chain, so recovery writes `unknown`
 * exactly for those without one — also after a crash between a final record's fsync and the journal's cleanup.
 *
 * Lines: {"sinceSeq":n} (first: the chain seq from which records may close entries), {"b":entry}, {"e":requestId}.
 */
import { constants } from 'node:fs'
import { open, readFile, rename, writeFile, type FileHandle } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { checkLine } from './chain.js'
import { readLines } from './lines.js'
import { fsyncDir, writeAll } from './files.js'
import type { SegmentName } from './segments.js'
import type { AuditEntry } from './types.js'

/**
 * The journal is opened O_DSYNC: each write returns once its data is durable, as write + fdatasync would, in one
 * system call and one trip to the thread pool instead of two (p50 110–140 µs against 160–200 µs on this project's
 * development disk). A torn or failed write is handled as before (truncate back, keep the lines queued).
 *
 * Preallocated: a compaction writes the new journal with PREALLOC_BYTES of zeros after its lines, and lines are
 * then written over those zeros, at their offset, rather than appended. An O_DSYNC write that grows a file must
 * also make the new size durable (on ext4 a journal commit of the inode each time); one within the file's size
 * writes data alone: 1.1 KB writes p50 138–150 µs against 208–220 µs appended, about half the kernel CPU (50–57
 * against 97 µs each), on the development disk. When less than half a chunk of zeros is left, the next chunk is
 * written after them (p50 460 µs per 256 KiB, once per ~230 lines of a KB). A reader stops caring at the first
 * NUL: the zeros are never a line (`leftovers` skips them). After a failed write the file is truncated back to its
 * lines (the zeros go too) and appended to until the next compaction; where that truncate failed, or a compaction
 * failed and left an older file whose zeros may lie after its lines, the next line starts on a fresh line.
 */
const NEWLINE = Buffer.from('\n')

const APPEND_DSYNC = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC
/** the preallocated journal: writes at an offset (O_APPEND would write after the zeros) */
const WRITE_DSYNC = constants.O_WRONLY | constants.O_DSYNC

/** zeros written ahead of the lines, at a compaction and whenever less than half of them is left */
export const PREALLOC_BYTES = 256 * 1024
let zeros: Buffer | null = null
const zeroChunk = (): Buffer => (zeros ??= Buffer.alloc(PREALLOC_BYTES))

export interface JournalLine {
  /**
   * the line, newline included, UTF-8: bytes outside the JS heap, since a begin keeps its line until its final
   * record is durable (tens of milliseconds, long enough for V8 to promote a string to its old generation)
   */
  bytes: Buffer
  at: number
  cancelled: boolean
  /** called once the line is durable */
  done: (() => void) | null
}

export class Journal {
  #fh: FileHandle | null = null
  /** where the lines end: the next line's offset */
  #bytes = 0
  /** preallocated: the file's size (lines, then zeros), and lines are written at #bytes; 0: appended (O_APPEND) */
  #allocated = 0
  /** bytes of the {"sinceSeq"} line the last compaction started the file with */
  #headerBytes = 0
  #queue: JournalLine[] = []
  /** a failed write may have left half a line that could not be cut off: start the next write on a new line */
  #dirtyTail = false
  /** the last write failed: reopen the file by its path first (the mount may have been replaced under us) */
  #reopen = false
  /**
   * The writer must rewrite the journal at once: the file came back shorter than what was made durable (a repaired
   * filesystem), or a compaction's new file is in place but its name may not be durable (the directory's fsync
   * failed: a crash could bring the old file back, without the lines written since).
   */
  lost = false
  /** durable journal writes done (every begin queued meanwhile shares one) */
  commits = 0

  /** `syncDir` makes a rename durable (files.ts fsyncDir; a test can make it fail) */
  constructor (readonly path: string, private readonly syncDir: (dir: string) => Promise<void> = fsyncDir) {}

  get bytes (): number { return this.#bytes }
  /** bytes of begin and end lines (all but the first line a compaction wrote) */
  get lineBytes (): number { return this.#bytes - this.#headerBytes }
  /** lines queued and not yet durable */
  get pending (): number { return this.#queue.length }
  get oldestAt (): number | null { return this.#queue[0]?.at ?? null }

  queueBegin (entry: AuditEntry, done: () => void): JournalLine {
    const line: JournalLine = { bytes: Buffer.from(JSON.stringify({ b: entry }) + '\n'), at: Date.now(), cancelled: false, done }
    this.#queue.push(line)
    return line
  }

  queueEnd (requestId: string): void {
    this.#queue.push({ bytes: Buffer.from(JSON.stringify({ e: requestId }) + '\n'), at: Date.now(), cancelled: false, done: null })
  }

  /**
   * Take a line back: true when it was still queued (it will never be written); false when it is being written or
   * is written already (a failed write's retry leaves it out).
   */
  cancel (line: JournalLine): boolean {
    line.cancelled = true
    line.done = null
    const i = this.#queue.indexOf(line)
    if (i === -1) return false
    this.#queue.splice(i, 1)
    return true
  }

  /** Write what is queued (durable on return); on failure the lines stay queued, in order, and the error is thrown. */
  async commit (): Promise<void> {
    if (this.#queue.length === 0) return
    // #reopen: the last write failed, or a compaction could not open (or stat) the file the rename left at the
    // path; either may end in zeros: opened again and appended to (#dirtyTail: from a new line).
    if (this.#reopen) await this.#reopenFile()
    const fh = this.#fh
    if (fh === null) throw new Error('audit journal is not open')
    const lines = this.#queue
    this.#queue = []
    const parts = lines.map((l) => l.bytes)
    if (this.#dirtyTail) parts.unshift(NEWLINE)
    const buf = Buffer.concat(parts)
    const at = this.#allocated > 0 ? this.#bytes : undefined
    try {
      await writeAll(fh, buf, at) // durable when it returns (O_DSYNC)
    } catch (err) {
      this.#dirtyTail = true
      this.#reopen = true
      // back to the lines alone (zeros included: appended to from now on, see #reopenFile)
      await fh.truncate(this.#bytes).then(() => { this.#dirtyTail = false }, () => {})
      this.#queue = [...lines.filter((l) => !l.cancelled), ...this.#queue]
      throw err
    }
    this.#dirtyTail = false
    this.commits++
    this.#bytes += buf.length
    for (const l of lines) { const done = l.done; l.done = null; done?.() }
    if (this.#allocated > 0 && this.#allocated - this.#bytes < PREALLOC_BYTES / 2) await this.#extend(fh)
  }

  /**
   * The next chunk of zeros, after the file's end (past it, a line would grow the file). A failure changes no line
   * and is not a failed commit: the lines go on being written at their offset, growing the file as appended ones do.
   */
  async #extend (fh: FileHandle): Promise<void> {
    const end = Math.max(this.#allocated, this.#bytes)
    try {
      await writeAll(fh, zeroChunk(), end)
      this.#allocated = end + PREALLOC_BYTES
    } catch {
      this.#allocated = Number.MAX_SAFE_INTEGER // no more tries until the next compaction
    }
  }

  async #reopenFile (): Promise<void> {
    const fh = await open(this.path, APPEND_DSYNC)
    await this.#fh?.close().catch(() => {})
    this.#fh = fh
    const size = (await fh.stat()).size
    if (size < this.#bytes) this.lost = true
    // appended to from here on (the truncate after the failed write cut the zeros; if it failed too, #dirtyTail
    // starts the next line on a new line after whatever is there)
    this.#bytes = size
    this.#allocated = 0
    this.#headerBytes = Math.min(this.#headerBytes, size)
    this.#reopen = false
  }

  /** The entry of a begin line (JournalLine.bytes of queueBegin). */
  static entryOf (begin: Buffer): AuditEntry {
    return (JSON.parse(begin.toString('utf8')) as { b: AuditEntry }).b
  }

  /**
   * Replace the journal with a fresh one: the chain seq from which records count, and the begins still open (their
   * lines, as queueBegin made them); with its zeros unless `preallocate` is false (a writer closing: nothing follows).
   */
  async compact (sinceSeq: number, openBegins: Iterable<Buffer>, preallocate = true): Promise<void> {
    const header = Buffer.from(JSON.stringify({ sinceSeq }) + '\n')
    const lines: Buffer[] = [header]
    for (const bytes of openBegins) lines.push(bytes)
    const content = Buffer.concat(lines)
    const tmp = this.path + '.tmp'
    // Written aside first: a failure here leaves the old journal (a superset) in place and open. Without its zeros
    // when they do not fit (a nearly full disk): the journal is then appended to, as before preallocation.
    let padded = preallocate
    try {
      await writeFile(tmp, padded ? Buffer.concat([content, zeroChunk()]) : content, { flush: true })
    } catch (err) {
      if (!padded) throw err
      padded = false
      await writeFile(tmp, content, { flush: true })
    }
    await this.#fh?.close()
    this.#fh = null
    let renamed = false
    let synced = false
    try {
      await rename(tmp, this.path)
      renamed = true
      await this.syncDir(dirname(this.path))
      synced = true
    } finally {
      if (renamed && !synced) this.lost = true
      // Until the file at the path is open and known, the next commit reopens it (appending, from a new line).
      this.#reopen = true
      this.#dirtyTail = true
      // positional writes only into the file written just now; the old one (its zeros, if any, after its lines)
      // is appended to, starting on a new line
      const fh = await open(this.path, renamed && padded ? WRITE_DSYNC : APPEND_DSYNC)
      this.#fh = fh
      const size = (await fh.stat()).size
      this.#bytes = renamed ? content.length : size
      this.#allocated = renamed && padded ? size : 0
      this.#headerBytes = Math.min(this.#bytes, header.length)
      this.#dirtyTail = !renamed
      this.#reopen = false
    }
  }

  async close (): Promise<void> {
    await this.#fh?.close()
    this.#fh = null
  }

  /**
   * Begins left by the previous run with no record in the chain: read the journal, then the chain from the segment
   * holding its sinceSeq onwards, dropping every requestId that has an interaction record there.
   */
  static async leftovers (path: string, dir: string, segments: SegmentName[]): Promise<AuditEntry[]> {
    let text: string
    try { text = await readFile(path, 'utf8') } catch { return [] }
    let sinceSeq = 1
    const begun = new Map<string, AuditEntry>()
    for (const line of text.split('\n')) {
      // an empty line (a new line after a failed write), or the zeros a preallocated journal ends with
      if (line === '' || line.charCodeAt(0) === 0) continue
      let j: { sinceSeq?: number, b?: AuditEntry, e?: string }
      try { j = JSON.parse(line) as typeof j } catch { continue } // a torn journal line: its begin was not durable
      if (typeof j.sinceSeq === 'number') sinceSeq = j.sinceSeq
      if (j.b !== undefined) begun.set(j.b.requestId, j.b)
      if (j.e !== undefined) begun.delete(j.e)
    }
    if (begun.size === 0) return []
    const from = Math.max(0, segments.findLastIndex((s) => s.firstSeq <= sinceSeq))
    for (const s of segments.slice(from)) {
      for await (const { text: l } of readLines(join(dir, s.file))) {
        const c = checkLine(l)
        if (c.ok && c.record.kind === 'interaction' && c.record.seq >= sinceSeq) begun.delete(c.record.requestId)
      }
    }
    return [...begun.values()]
  }
}
