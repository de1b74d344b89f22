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
 */
const NEWLINE = Buffer.from('\n')

const APPEND_DSYNC = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC

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
  #bytes = 0
  /** bytes of the {"sinceSeq"} line the last compaction started the file with */
  #headerBytes = 0
  #queue: JournalLine[] = []
  /** a failed write may have left half a line that could not be cut off: start the next write on a new line */
  #dirtyTail = false
  /** the last write failed: reopen the file by its path first (the mount may have been replaced under us) */
  #reopen = false
  /** the file came back shorter than what was made durable (a repaired filesystem): the writer rewrites it */
  lost = false
  /** durable journal writes done (every begin queued meanwhile shares one) */
  commits = 0

  constructor (readonly path: string) {}

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

  /** Take a queued line back before it is written (its request will not be forwarded). */
  cancel (line: JournalLine): void {
    line.cancelled = true
    line.done = null
    const i = this.#queue.indexOf(line)
    if (i !== -1) this.#queue.splice(i, 1)
  }

  /** Write what is queued (durable on return); on failure the lines stay queued, in order, and the error is thrown. */
  async commit (): Promise<void> {
    if (this.#queue.length === 0) return
    if (this.#reopen) await this.#reopenFile()
    const fh = this.#fh
    if (fh === null) throw new Error('audit journal is not open')
    const lines = this.#queue
    this.#queue = []
    const parts = lines.map((l) => l.bytes)
    if (this.#dirtyTail) parts.unshift(NEWLINE)
    const buf = Buffer.concat(parts)
    try {
      await writeAll(fh, buf) // durable when it returns (O_DSYNC)
    } catch (err) {
      this.#dirtyTail = true
      this.#reopen = true
      await fh.truncate(this.#bytes).then(() => { this.#dirtyTail = false }, () => {})
      this.#queue = [...lines.filter((l) => !l.cancelled), ...this.#queue]
      throw err
    }
    this.#dirtyTail = false
    this.commits++
    this.#bytes += buf.length
    for (const l of lines) l.done?.()
  }

  async #reopenFile (): Promise<void> {
    const fh = await open(this.path, APPEND_DSYNC)
    await this.#fh?.close().catch(() => {})
    this.#fh = fh
    const size = (await fh.stat()).size
    if (size < this.#bytes) this.lost = true
    this.#bytes = size
    this.#headerBytes = Math.min(this.#headerBytes, size)
    this.#reopen = false
  }

  /** The entry of a begin line (JournalLine.bytes of queueBegin). */
  static entryOf (begin: Buffer): AuditEntry {
    return (JSON.parse(begin.toString('utf8')) as { b: AuditEntry }).b
  }

  /**
   * Replace the journal with a fresh one: the chain seq from which records count, and the begins still open (their
   * lines, as queueBegin made them).
   */
  async compact (sinceSeq: number, openBegins: Iterable<Buffer>): Promise<void> {
    const header = Buffer.from(JSON.stringify({ sinceSeq }) + '\n')
    const lines: Buffer[] = [header]
    for (const bytes of openBegins) lines.push(bytes)
    const tmp = this.path + '.tmp'
    // Written aside first: a failure here leaves the old journal (a superset) in place and open.
    await writeFile(tmp, Buffer.concat(lines), { flush: true })
    await this.#fh?.close()
    this.#fh = null
    try {
      await rename(tmp, this.path)
      await fsyncDir(dirname(this.path))
    } finally {
      const fh = await open(this.path, APPEND_DSYNC)
      this.#fh = fh
      this.#bytes = (await fh.stat()).size
      this.#headerBytes = Math.min(this.#bytes, header.length)
      this.#dirtyTail = false
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
      if (line === '') continue
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
