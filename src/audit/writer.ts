import { createHash, type Hash } from 'node:crypto'
import { mkdir, open, readFile, rename, stat, truncate, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { GENESIS, checkLine, sealDigest, sealJson, sha256, type Signer } from './chain.js'
import {
  DIGEST_DIR, TORN_DIR, dayOf, digestFile, listDigests, listSegments, segmentFile, type SegmentName
} from './segments.js'
import { readLines } from './lines.js'
import { readExported } from './export.js'
import type { AdminChange, AnyEntry, AuditEntry, AuditLog, AuditStats, SystemFields } from './types.js'

/**
 * One replica's audit writer: a single hash chain, written as append-only JSONL segments with group commit.
 *
 *   append() ─► seal (seq, prev, hash) ─► queue ──(every fsyncIntervalMs, or at flushBytes)──► write + fdatasync
 *                                                                       │ rotate: new UTC day, or rotateBytes
 *                                                                       └► digests/ (signed; on rotation, periodically)
 *   begin()  ─► in-flight journal (same group commit): what was forwarded; on the next start, an interaction
 *               begun but never recorded gets a record with outcome `unknown`.
 *
 * append() only serialises and hashes (a few µs); no I/O on the request path. A crash can lose at most the records
 * of the last group-commit window that had not reached write(2) yet; the journal covers longer interactions.
 */

export interface WriterOptions {
  dir: string
  writer: string
  fsyncIntervalMs: number
  rotateBytes: number
  /** queued bytes that trigger a commit without waiting for the interval */
  flushBytes: number
  digestIntervalMs: number
  signer: Signer | null
  log: Logger
  /** compact the in-flight journal when it grows past this */
  journalCompactBytes?: number
  /** delete segments older than this many days, once verified and exported */
  retentionDays?: number
  /** a digest file is in place (digests/<file>): anchoring (time-stamp, witnesses) takes it from here */
  onDigest?: (file: string, text: string) => void
}

interface Item { line: string, bytes: number, seq: number, hash: string, day: string, closes: string | null }

interface OpenSegment {
  name: string
  fh: FileHandle
  day: string
  firstSeq: number
  lastSeq: number
  lastHash: string
  bytes: number
  records: number
  hasher: Hash
  digestedBytes: number
}

interface ChainTip { seq: number, hash: string }

const JOURNAL_COMPACT_BYTES = 1 << 20
const RETENTION_SWEEP_MS = 3_600_000

async function finalDigests (dir: string, writer: string): Promise<Map<string, { sha256: string, firstSeq: number, lastSeq: number, lastHash: string, records: number }>> {
  const out = new Map<string, { sha256: string, firstSeq: number, lastSeq: number, lastHash: string, records: number }>()
  for (const d of (await listDigests(dir)).get(writer) ?? []) {
    const j = JSON.parse(await readFile(join(dir, DIGEST_DIR, d.file), 'utf8')) as { segment: string, final: boolean, sha256: string, firstSeq: number, lastSeq: number, lastHash: string, records: number }
    if (j.final) out.set(j.segment, j)
  }
  return out
}

export class AuditWriter implements AuditLog {
  readonly dir: string
  readonly writer: string
  readonly publicKeyPem: string | null
  readonly #o: WriterOptions
  readonly #log: Logger
  #seq = 0
  #prev = GENESIS
  #durableSeq = 0
  #queue: Item[] = []
  #queueBytes = 0
  #journalQueue: string[] = []
  /** requestId -> begin entry, until its record is durable */
  readonly #inflight = new Map<string, AuditEntry>()
  /** begun, and neither appended nor ended yet */
  readonly #open = new Set<string>()
  #openWaiters: Array<() => void> = []
  readonly #unknownAtClose = new Set<string>()
  #seg: OpenSegment | null = null
  #digestSeq = 0
  #prevDigest = GENESIS
  #journal: FileHandle | null = null
  #journalBytes = 0
  #running = false
  #idle: Array<() => void> = []
  #timer: NodeJS.Timeout | null = null
  #digestTimer: NodeJS.Timeout | null = null
  #digestDue = false
  #retentionTimer: NodeJS.Timeout | null = null
  #sweeping: Promise<number> = Promise.resolve(0)
  #closed = false
  #appended = 0
  #oldestQueuedAt = 0
  #writeErrors = 0
  #commits = 0
  #retryAt = 0

  private constructor (o: WriterOptions) {
    this.#o = o
    this.dir = o.dir
    this.writer = o.writer
    this.publicKeyPem = o.signer?.publicKeyPem ?? null
    this.#log = o.log
  }

  /** Open (and recover) the writer's chain in `dir`. */
  static async open (o: WriterOptions): Promise<AuditWriter> {
    const w = new AuditWriter(o)
    await w.#recover()
    return w
  }

  // ── request path ──────────────────────────────────────────────────────────────────────────────────────────

  append (entry: AuditEntry): void {
    const closes = this.#inflight.has(entry.requestId) ? entry.requestId : null
    if (this.#unknownAtClose.has(entry.requestId)) {
      this.#log.error({ requestId: entry.requestId }, 'audit record arrived after close had recorded the interaction as unknown')
      return
    }
    // '{"kind":"interaction",' + the entry's own fields: the record without copying the entry object.
    this.#enqueueJson('{"kind":"interaction",' + JSON.stringify(entry).slice(1), entry.ts, closes)
    this.#settle(entry.requestId)
  }

  /** The interaction is no longer open (its record is queued, or none will come). */
  #settle (requestId: string): void {
    if (this.#open.delete(requestId) && this.#open.size === 0) {
      const w = this.#openWaiters
      this.#openWaiters = []
      for (const r of w) r()
    }
  }

  appendAdminChange (change: AdminChange): void {
    this.#enqueue({ kind: 'admin', ...change, before: redactKeys(change.before), after: redactKeys(change.after) }, null)
  }

  begin (entry: AuditEntry): void {
    if (this.#closed) return
    this.#inflight.set(entry.requestId, entry)
    this.#open.add(entry.requestId)
    this.#journalQueue.push(JSON.stringify({ b: entry }) + '\n')
    this.#schedule()
  }

  end (requestId: string): void {
    // No record will come: forget the begin. The journal line stays until compaction; recovery only writes
    // `unknown` records for begins still in the journal, so compact now if it matters (it is rare: out of scope).
    if (this.#inflight.delete(requestId)) this.#journalQueue.push(JSON.stringify({ e: requestId }) + '\n')
    this.#settle(requestId)
  }

  #enqueue (entry: AnyEntry, closes: string | null): void {
    if (this.#closed) {
      this.#log.error({ record: summary(entry) }, 'audit record after close: not written')
      return
    }
    this.#enqueueJson(JSON.stringify(entry), entry.ts, closes)
  }

  #enqueueJson (json: string, ts: string, closes: string | null): void {
    if (this.#closed) {
      this.#log.error({ record: json.slice(0, 200) }, 'audit record after close: not written')
      return
    }
    const seq = this.#seq + 1
    const { line, hash } = sealJson(json, this.writer, seq, this.#prev)
    this.#seq = seq
    this.#prev = hash
    this.#appended++
    const bytes = Buffer.byteLength(line)
    if (this.#queue.length === 0) this.#oldestQueuedAt = Date.now()
    this.#queue.push({ line, bytes, seq, hash, day: dayOf(ts), closes })
    this.#queueBytes += bytes
    this.#schedule()
  }

  #schedule (): void {
    if (this.#running) return
    if (this.#queueBytes >= this.#o.flushBytes) {
      if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null }
      this.#kick()
      return
    }
    if (this.#timer === null) {
      const wait = Math.max(this.#o.fsyncIntervalMs, this.#retryAt - Date.now())
      this.#timer = setTimeout(() => { this.#timer = null; this.#kick() }, wait)
      this.#timer.unref()
    }
  }

  // ── group commit ──────────────────────────────────────────────────────────────────────────────────────────

  #kick (): void {
    if (this.#running) return
    this.#running = true
    void this.#loop()
  }

  async #loop (): Promise<void> {
    let failed = false
    try {
      while (this.#queue.length > 0 || this.#journalQueue.length > 0 || this.#digestDue) {
        try {
          await this.#commit()
        } catch (err) {
          failed = true
          this.#writeErrors++
          this.#retryAt = Date.now() + 1000
          this.#log.error({ err, queued: this.#queue.length }, 'audit write failed; records kept in memory, retrying')
          break
        }
      }
    } finally {
      this.#running = false
      if (this.#queue.length > 0 || this.#journalQueue.length > 0) this.#schedule()
      // flush() waiters learn of a failure now (and throw) rather than wait for the disk to come back.
      if (failed || this.#queue.length === 0) {
        const idle = this.#idle
        this.#idle = []
        for (const r of idle) r()
      }
    }
  }

  async #commit (): Promise<void> {
    const batch = this.#queue
    const journal = this.#journalQueue
    this.#queue = []
    this.#queueBytes = 0
    this.#journalQueue = []
    try {
      await Promise.all([this.#writeRecords(batch), this.#writeJournal(journal)])
    } catch (err) {
      // Put back what was not made durable, in order, ahead of anything queued since.
      const done = this.#durableSeq
      const left = batch.filter((i) => i.seq > done)
      if (this.#queue.length === 0) this.#oldestQueuedAt = Date.now()
      this.#queue = [...left, ...this.#queue]
      this.#queueBytes = this.#queue.reduce((n, i) => n + i.bytes, 0)
      this.#journalQueue = [...journal, ...this.#journalQueue]
      throw err
    }
    if (batch.length > 0) this.#commits++
    for (const i of batch) if (i.closes !== null) this.#inflight.delete(i.closes)
    if (this.#digestDue) {
      this.#digestDue = false
      const seg = this.#seg
      if (seg !== null && seg.bytes > seg.digestedBytes) await this.#writeDigest(seg, false)
    }
    if (this.#journalBytes > (this.#o.journalCompactBytes ?? JOURNAL_COMPACT_BYTES)) await this.#compactJournal()
  }

  async #writeRecords (batch: Item[]): Promise<void> {
    let pending: Item[] = []
    let pendingBytes = 0
    for (const item of batch) {
      const seg = this.#seg
      const full = seg !== null && seg.records + pending.length > 0 && seg.bytes + pendingBytes + item.bytes > this.#o.rotateBytes
      if (seg === null || seg.day !== item.day || full) {
        if (seg !== null) {
          await this.#writeItems(seg, pending)
          pending = []
          pendingBytes = 0
          await this.#finishSegment(seg)
        }
        this.#seg = await this.#openSegment(item.day, item.seq)
      }
      pending.push(item)
      pendingBytes += item.bytes
    }
    const seg = this.#seg
    if (seg !== null && pending.length > 0) await this.#writeItems(seg, pending)
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
      throw err
    }
    seg.hasher.update(buf)
    seg.bytes += buf.length
    seg.records += items.length
    const last = items[items.length - 1]
    if (last !== undefined) {
      seg.lastSeq = last.seq
      seg.lastHash = last.hash
      this.#durableSeq = last.seq
    }
  }

  async #writeJournal (lines: string[]): Promise<void> {
    if (lines.length === 0 || this.#journal === null) return
    const buf = Buffer.from(lines.join(''))
    await writeAll(this.#journal, buf)
    await this.#journal.datasync()
    this.#journalBytes += buf.length
  }

  async #compactJournal (): Promise<void> {
    const path = this.#journalPath()
    const tmp = path + '.tmp'
    const lines = [JSON.stringify({ sinceSeq: this.#durableSeq + 1 }) + '\n']
    for (const e of this.#inflight.values()) lines.push(JSON.stringify({ b: e }) + '\n')
    const text = lines.join('')
    await writeFile(tmp, text, { flush: true })
    await this.#journal?.close()
    await rename(tmp, path)
    this.#journal = await open(path, 'a')
    this.#journalBytes = Buffer.byteLength(text)
  }

  #journalPath (): string { return join(this.dir, `${this.writer}.inflight.jsonl`) }

  async #openSegment (day: string, firstSeq: number): Promise<OpenSegment> {
    const name = segmentFile(this.writer, day, firstSeq)
    // 'ax': a segment is never reopened or overwritten once another took its place.
    const fh = await open(join(this.dir, name), 'ax')
    await fsyncDir(this.dir)
    return { name, fh, day, firstSeq, lastSeq: firstSeq - 1, lastHash: '', bytes: 0, records: 0, hasher: createHash('sha256'), digestedBytes: 0 }
  }

  async #finishSegment (seg: OpenSegment): Promise<void> {
    await seg.fh.close()
    if (this.#seg === seg) this.#seg = null
    if (seg.records > 0) await this.#writeDigest(seg, true)
  }

  async #writeDigest (seg: { name: string, bytes: number, hasher: Hash, firstSeq: number, lastSeq: number, lastHash: string, records: number, digestedBytes: number }, final: boolean): Promise<void> {
    const digestSeq = this.#digestSeq + 1
    const text = sealDigest({
      kind: 'digest',
      version: 1,
      writer: this.writer,
      digestSeq,
      ts: new Date().toISOString(),
      segment: seg.name,
      bytes: seg.bytes,
      sha256: seg.hasher.copy().digest('hex'),
      firstSeq: seg.firstSeq,
      lastSeq: seg.lastSeq,
      lastHash: seg.lastHash,
      records: seg.records,
      final,
      prevDigest: this.#prevDigest
    }, this.#o.signer)
    const ddir = join(this.dir, DIGEST_DIR)
    // Written aside and renamed into place, so a reader (a live verify, a shipper to WORM storage) never sees half.
    const name = digestFile(this.writer, digestSeq)
    const tmp = join(ddir, `.${name}.tmp`)
    await writeFile(tmp, text, { flag: 'w', flush: true })
    await rename(tmp, join(ddir, name))
    await fsyncDir(ddir)
    this.#o.onDigest?.(name, text)
    this.#digestSeq = digestSeq
    this.#prevDigest = sha256(text)
    seg.digestedBytes = seg.bytes
  }

  // ── recovery ──────────────────────────────────────────────────────────────────────────────────────────────

  async #recover (): Promise<void> {
    await mkdir(join(this.dir, DIGEST_DIR), { recursive: true })
    if (this.#o.signer !== null) await publishKey(this.dir, this.#o.signer)
    const system: SystemFields[] = []
    const segments = (await listSegments(this.dir)).get(this.writer) ?? []
    const digests = (await listDigests(this.dir)).get(this.writer) ?? []
    const lastDigest = digests.at(-1)
    let lastDigestText: string | null = null
    if (lastDigest !== undefined) {
      lastDigestText = await readFile(join(this.dir, DIGEST_DIR, lastDigest.file), 'utf8')
      this.#digestSeq = lastDigest.digestSeq
      this.#prevDigest = sha256(lastDigestText)
    }
    // The last segment: move a torn last line aside, drop a segment left empty, find the chain's tip.
    let tip: ChainTip | null = null
    while (segments.length > 0 && tip === null) {
      const last = segments[segments.length - 1] as SegmentName
      const path = join(this.dir, last.file)
      const torn = await cutTornTail(this.dir, path)
      if (torn !== null) system.push({ kind: 'system', ts: new Date().toISOString(), event: 'torn-tail', detail: { segment: last.file, ...torn } })
      tip = await lastRecord(path)
      if (tip === null) {
        await unlink(path)
        segments.pop()
      }
    }
    if (tip !== null) {
      this.#seq = tip.seq
      this.#prev = tip.hash
      this.#durableSeq = tip.seq
      const last = segments[segments.length - 1] as SegmentName
      const lastDigestJson = lastDigestText === null ? null : JSON.parse(lastDigestText) as { segment: string, final: boolean, bytes: number }
      const size = (await stat(join(this.dir, last.file))).size
      // Seal the previous run's last segment with a final digest unless one already covers all of it.
      if (lastDigestJson === null || lastDigestJson.segment !== last.file || !lastDigestJson.final || lastDigestJson.bytes !== size) {
        const hasher = await hashFile(join(this.dir, last.file))
        const firstSeq = last.firstSeq
        const records = tip.seq - firstSeq + 1
        await this.#writeDigest({ name: last.file, bytes: size, hasher, firstSeq, lastSeq: tip.seq, lastHash: tip.hash, records, digestedBytes: 0 }, true)
      }
    }
    // Interactions begun by the previous run and never recorded.
    const unknown = await this.#journalLeftovers(segments)
    if (unknown.length > 0 || system.length > 0) {
      system.push({ kind: 'system', ts: new Date().toISOString(), event: 'recovered', detail: { unknownOutcomes: unknown.length, lastSeq: this.#seq } })
    }
    const path = this.#journalPath()
    await writeFile(path, JSON.stringify({ sinceSeq: this.#seq + 1 }) + '\n', { flush: true })
    this.#journal = await open(path, 'a')
    this.#journalBytes = (await stat(path)).size
    for (const s of system) this.#enqueue(s, null)
    for (const e of unknown) this.#enqueue({ kind: 'interaction', ...e }, null)
    if (system.length > 0 || unknown.length > 0) {
      this.#log.warn({ unknownOutcomes: unknown.length, events: system.map((s) => s.event) }, 'audit log recovered after an unclean stop')
      await this.flush()
    }
    if (this.#o.digestIntervalMs > 0) {
      this.#digestTimer = setInterval(() => { this.#digestDue = true; this.#kick() }, this.#o.digestIntervalMs)
      this.#digestTimer.unref()
    }
    if (this.#o.retentionDays !== undefined) {
      await this.sweepRetention()
      this.#retentionTimer = setInterval(() => {
        this.sweepRetention().catch((err: unknown) => { this.#log.error({ err }, 'audit retention sweep failed') })
      }, RETENTION_SWEEP_MS)
      this.#retentionTimer.unref()
    }
  }

  /** Begins in the journal with no record in the chain since the journal started. */
  async #journalLeftovers (segments: SegmentName[]): Promise<AuditEntry[]> {
    let text: string
    try { text = await readFile(this.#journalPath(), 'utf8') } catch { return [] }
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
    // Read the chain from the segment holding sinceSeq onwards, dropping begins that did get their record.
    const from = Math.max(0, segments.findLastIndex((s) => s.firstSeq <= sinceSeq))
    for (const s of segments.slice(from)) {
      for await (const { text: l } of readLines(join(this.dir, s.file))) {
        const c = checkLine(l)
        if (c.ok && c.record.kind === 'interaction' && c.record.seq >= sinceSeq) begun.delete(c.record.requestId)
      }
    }
    const now = new Date().toISOString()
    return [...begun.values()].map((e) => ({ ...e, ts: now, status: null, tokensIn: null, tokensOut: null, latencyMs: null, outcome: 'unknown' as const }))
  }

  // ── retention ─────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Delete this writer's oldest segments once they are past retentionDays, verified (their bytes still hash to
   * their signed final digest) and listed as exported in exported.jsonl with that same hash. Only a prefix of the
   * chain is ever removed, never the newest segment, and each deletion is first written (durably) into the chain
   * itself, so `verify` can tell a retention deletion from a deleted segment. Returns how many were deleted.
   */
  async sweepRetention (): Promise<number> {
    const run = this.#sweeping.then(async () => await this.#sweep(), async () => await this.#sweep())
    this.#sweeping = run.catch(() => 0)
    return await run
  }

  async #sweep (): Promise<number> {
    const days = this.#o.retentionDays
    if (days === undefined || this.#closed) return 0
    const cutoff = new Date(Date.now() - days * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '')
    const segments = (await listSegments(this.dir)).get(this.writer) ?? []
    const exported = await readExported(this.dir)
    const finals = await finalDigests(this.dir, this.writer)
    let deleted = 0
    // Never the newest segment (it holds the chain's tip), nor the one being written.
    for (const seg of segments.slice(0, -1)) {
      if (seg.day >= cutoff || seg.file === this.#seg?.name) break
      const final = finals.get(seg.file)
      const ex = exported.get(seg.file)
      if (final === undefined || ex === undefined || ex.sha256 !== final.sha256) break
      const actual = (await hashFile(join(this.dir, seg.file))).digest('hex')
      if (actual !== final.sha256) {
        this.#log.error({ segment: seg.file }, 'audit retention: segment does not match its final digest; kept')
        break
      }
      this.#enqueue({
        kind: 'system',
        ts: new Date().toISOString(),
        event: 'retention-delete',
        detail: { segment: seg.file, sha256: final.sha256, firstSeq: final.firstSeq, lastSeq: final.lastSeq, lastHash: final.lastHash, records: final.records, exportedAt: ex.exportedAt, retentionDays: days }
      }, null)
      await this.flush()
      await unlink(join(this.dir, seg.file))
      deleted++
    }
    if (deleted > 0) this.#log.info({ deleted, retentionDays: days }, 'audit retention: segments deleted')
    return deleted
  }

  // ── lifecycle ─────────────────────────────────────────────────────────────────────────────────────────────

  async flush (): Promise<void> {
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null }
    if (!this.#running && this.#queue.length === 0 && this.#journalQueue.length === 0) return
    const done = new Promise<void>((resolve) => { this.#idle.push(resolve) })
    this.#kick()
    await done
    if (this.#queue.length > 0) throw new Error(`audit flush failed: ${this.#queue.length} record(s) not written`)
  }

  stats (): AuditStats {
    return {
      queueDepth: this.#queue.length,
      lagSeconds: this.#queue.length === 0 ? 0 : (Date.now() - this.#oldestQueuedAt) / 1000,
      appended: this.#appended,
      durable: this.#durableSeq,
      inFlight: this.#inflight.size,
      writeErrors: this.#writeErrors,
      commits: this.#commits,
      lastSeq: this.#seq
    }
  }

  /**
   * Flush everything and seal the segment. Interactions still open get a grace period to finish (the server may
   * close its sockets a moment before the last response hooks have run); those still open after it are recorded
   * with outcome `unknown`, and a record arriving for them later is refused rather than written twice.
   */
  async close (graceMs = 2000): Promise<void> {
    if (this.#closed) return
    if (this.#open.size > 0) {
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.#openWaiters.push(resolve)
        timer = setTimeout(resolve, graceMs)
      })
      clearTimeout(timer)
    }
    for (const id of [...this.#open]) {
      const e = this.#inflight.get(id)
      if (e === undefined) continue
      this.append({ ...e, ts: new Date().toISOString(), status: null, tokensIn: null, tokensOut: null, latencyMs: null, outcome: 'unknown' })
      this.#unknownAtClose.add(id)
    }
    this.#closed = true
    if (this.#digestTimer !== null) clearInterval(this.#digestTimer)
    if (this.#retentionTimer !== null) clearInterval(this.#retentionTimer)
    await this.#sweeping
    await this.flush()
    const seg = this.#seg
    if (seg !== null) await this.#finishSegment(seg)
    this.#inflight.clear()
    await this.#compactJournal()
    await this.#journal?.close()
    this.#journal = null
  }
}

async function writeAll (fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off)
    off += bytesWritten
  }
}

async function fsyncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try { await fh.sync() } catch { /* some filesystems refuse fsync on directories */ } finally { await fh.close() }
}

async function hashFile (path: string): Promise<Hash> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer)
  return h
}

/** Bytes after the last newline of a segment: a write cut short by a crash. Moved to torn/ and cut off. */
async function cutTornTail (dir: string, path: string): Promise<{ offset: number, bytes: number, sha256: string, movedTo: string } | null> {
  const size = (await stat(path)).size
  if (size === 0) return null
  const fh = await open(path, 'r')
  let offset = -1
  let tail: Buffer
  try {
    let end = size
    const chunks: Buffer[] = []
    while (end > 0 && offset === -1) {
      const start = Math.max(0, end - 65536)
      const buf = Buffer.alloc(end - start)
      await fh.read(buf, 0, buf.length, start)
      const nl = buf.lastIndexOf(0x0a)
      if (nl !== -1) offset = start + nl + 1
      chunks.unshift(nl === -1 ? buf : buf.subarray(nl + 1))
      end = start
    }
    if (offset === -1) offset = 0
    tail = Buffer.concat(chunks)
  } finally { await fh.close() }
  if (offset === size) return null
  const name = path.slice(path.lastIndexOf('/') + 1)
  const movedTo = join(TORN_DIR, `${name}.${offset}.torn`)
  await mkdir(join(dir, TORN_DIR), { recursive: true })
  await writeFile(join(dir, movedTo), tail, { flush: true })
  await truncate(path, offset)
  return { offset, bytes: tail.length, sha256: sha256(tail), movedTo }
}

/** Seq and hash of a segment's last line; null when it holds none. Throws when that line is not a sound record. */
async function lastRecord (path: string): Promise<ChainTip | null> {
  const size = (await stat(path)).size
  if (size === 0) return null
  const fh = await open(path, 'r')
  try {
    let len = Math.min(size, 65536)
    for (;;) {
      const buf = Buffer.alloc(len)
      await fh.read(buf, 0, len, size - len)
      const text = buf.toString('utf8', 0, buf.length - 1)
      const nl = text.lastIndexOf('\n')
      if (nl !== -1 || len === size) {
        const line = text.slice(nl + 1)
        const c = checkLine(line)
        if (!c.ok) throw new Error(`audit: the last record of ${path} is damaged (${c.reason}); run \`geogate audit verify\` and move the directory aside`)
        return { seq: c.record.seq, hash: c.record.hash }
      }
      len = Math.min(size, len * 4)
    }
  } finally { await fh.close() }
}

async function publishKey (dir: string, signer: Signer): Promise<void> {
  const ddir = join(dir, DIGEST_DIR)
  await writeFile(join(ddir, `${signer.keyId}.pem`), signer.publicKeyPem)
  await writeFile(join(ddir, 'public-key.pem'), signer.publicKeyPem)
}

/** Raw key material never goes into the log, whatever an admin change carries (LiteLLM #31620). */
function redactKeys (v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redactKeys)
  if (v === null || typeof v !== 'object') return v
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) out[k] = k === 'key' || k === 'apiKey' || k === 'rawKey' ? '[redacted]' : redactKeys(x)
  return out
}

function summary (e: AnyEntry): Record<string, unknown> {
  return e.kind === 'interaction' ? { kind: e.kind, requestId: e.requestId, decision: e.decision } : { kind: e.kind, ts: e.ts }
}
