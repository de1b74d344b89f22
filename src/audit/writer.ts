import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Signer } from './chain.js'
import { DIGEST_DIR } from './segments.js'
import { DigestChain } from './digests.js'
import { SegmentWriter } from './segment-writer.js'
import { Journal, type JournalLine } from './journal.js'
import { recoverChain } from './recover.js'
import { sweepRetention } from './retention.js'
import { Sealer, type Item, type Queued } from './seal.js'
import { WriteHealth, type WriteFailure } from './health.js'
import type { AdminChange, AnyEntry, AuditEntry, AuditHealth, AuditLog, AuditStats, BeginResult, SystemFields } from './types.js'

/**
 * One replica's audit writer: a single hash chain, written as append-only JSONL segments with group commit.
 * This file holds the queues and the two commit loops; its parts live beside it:
 *   seal.ts (seq, prev, hash) · segment-writer.ts (segments, rotation) · digests.ts (signed digests)
 *   journal.ts (write-ahead in-flight journal) · recover.ts (after a crash) · retention.ts · health.ts (failures)
 *
 *   begin()  ─► journal line ──(next commit, at once)──► write (O_DSYNC) ─► begin() resolves ─► forward
 *   append() ─► queue (JSON text) ──(fsyncIntervalMs, flushBytes, a digest or a flush)──► seal ─► write + fdatasync
 *
 * The journal's loop and the records' loop run side by side, one write each at a time: a begin waits for its
 * journal line's write alone, never for a segment's fdatasync (nor a digest) that started before it.
 *
 * Write-ahead: a request is forwarded only once its journal line is durable; commits are grouped (every begin
 * queued while the previous sync ran shares the next one). When writes fail (ENOSPC, EIO, EROFS, a dead mount),
 * everything stays queued in order and is retried with backoff; begin() then answers "not durable" within
 * journalTimeoutMs (a write that has not returned for that long; a line waits at most twice that, see #deadline) —
 * at once once the backlog passes maxBacklog — so the caller refuses (or, with onFailure serve, counts) the
 * interaction. The backlog is held in memory up to maxHeldRecords; beyond, records are dropped,
 * counted, and a `records-dropped` record says how many once writes resume.
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
  /** while writes fail: begin() answers "not durable" at once past this many records not durable */
  maxBacklog?: number
  /** records kept in memory while writes fail; beyond, dropped and counted */
  maxHeldRecords?: number
  /**
   * a begin() is answered "not durable" once writes fail, or a journal write has not returned for this long, or its
   * line has waited twice this long (see #deadline)
   */
  journalTimeoutMs?: number
  /** a digest file is in place (digests/<file>): anchoring (time-stamp, witnesses) takes it from here */
  onDigest?: (file: string, text: string) => void
}

/**
 * A begin whose final record is not durable yet. Its entry is kept as its journal line's bytes alone, not the entry
 * object: it lives until the record is durable, tens of milliseconds, long enough for V8 to move an object graph
 * of forty fields to its old generation and collect it there; the bytes live outside the JS heap.
 */
interface Inflight {
  line: JournalLine
  /** its begin() while it waits (withdraw settles it at once), with its timeout; both null once it is settled */
  resolve: ((r: BeginResult) => void) | null
  timer: NodeJS.Timeout | null
}

const JOURNAL_COMPACT_BYTES = 1 << 20
const RETENTION_SWEEP_MS = 3_600_000
const DEFAULT_MAX_BACKLOG = 1000
const DEFAULT_MAX_HELD = 100_000
const DEFAULT_JOURNAL_TIMEOUT_MS = 1000

export class AuditWriter implements AuditLog {
  readonly dir: string
  readonly writer: string
  readonly publicKeyPem: string | null
  readonly #o: Required<Omit<WriterOptions, 'retentionDays' | 'onDigest'>> & { retentionDays?: number }
  readonly #log: Logger
  readonly #sealer: Sealer
  readonly #digests: DigestChain
  readonly #segments: SegmentWriter
  readonly #journal: Journal
  readonly #health: WriteHealth
  /** accepted, not sealed yet */
  #unsealed: Queued[] = []
  #unsealedBytes = 0
  /** sealed, not durable yet (a failed commit leaves them here, in order) */
  #sealed: Item[] = []
  /** requestId → its begin, until its record is durable */
  readonly #inflight = new Map<string, Inflight>()
  /** bytes of the journal lines of #inflight: what a compaction keeps */
  #inflightBytes = 0
  /**
   * Every record up to this seq is durable and has closed its begin (left #inflight). A compaction starts the
   * journal from here: not from segments.durableSeq, which moves on as each part of a batch is made durable,
   * while the batch's begins are closed only once the whole write returned (a rotation in between waits for a
   * digest and a new file); a compaction in that gap would keep begins whose records it no longer reads.
   */
  #closedSeq = 0
  /** begun, and neither appended nor ended yet */
  readonly #open = new Set<string>()
  #openWaiters: Array<() => void> = []
  readonly #unknownAtClose = new Set<string>()
  readonly #journalLoop = new Loop(async () => await this.#run('journal', () => this.#journalDue(), async () => {
    await this.#journal.commit()
    if (this.#compactDue()) {
      this.#journal.lost = false
      await this.#journal.compact(this.#closedSeq + 1, [...this.#inflight.values()].map((f) => f.line.bytes))
    }
  }), (failed) => { this.#stopped(failed) }, () => !this.#stopping)

  readonly #recordsLoop = new Loop(async () => await this.#run('records', () => this.#recordsDue(Date.now()), async () => { await this.#commitRecords() }),
    (failed) => { this.#stopped(failed) }, () => !this.#stopping)
  /** close() has flushed: no loop starts again, none is scheduled (close compacts and closes the files itself) */
  #stopping = false
  /** a loop failed since flush() waiters were last let go */
  #failedSinceIdle = false
  #idle: Array<() => void> = []
  #timers: NodeJS.Timeout[] = []
  #digestDue = false
  /** flush() calls waiting: records are due at once, window or not */
  #flushing = 0
  #sweeping: Promise<number> = Promise.resolve(0)
  #closed = false
  #appended = 0
  #commits = 0
  #dropped = 0
  #droppedRun: { count: number, firstTs: string, lastTs: string } | null = null

  private constructor (o: WriterOptions) {
    this.#o = {
      journalCompactBytes: JOURNAL_COMPACT_BYTES,
      maxBacklog: DEFAULT_MAX_BACKLOG,
      maxHeldRecords: DEFAULT_MAX_HELD,
      journalTimeoutMs: DEFAULT_JOURNAL_TIMEOUT_MS,
      ...o
    }
    this.dir = o.dir
    this.writer = o.writer
    this.publicKeyPem = o.signer?.publicKeyPem ?? null
    this.#log = o.log
    this.#sealer = new Sealer(o.writer)
    this.#digests = new DigestChain(o.dir, o.writer, o.signer, o.onDigest)
    this.#segments = new SegmentWriter(o.dir, o.writer, o.rotateBytes, this.#digests)
    this.#journal = new Journal(join(o.dir, `${o.writer}.inflight.jsonl`))
    this.#health = new WriteHealth(o.dir, this.#o.journalTimeoutMs)
    this.#segments.onRewrite = (detail) => {
      this.#log.warn(detail, 'audit: the repaired filesystem had lost durable records; written again from memory')
      this.#enqueueEntry({ kind: 'system', ts: new Date().toISOString(), event: 'rewritten', detail })
    }
  }

  /** Open (and recover) the writer's chain in `dir`. */
  static async open (o: WriterOptions): Promise<AuditWriter> {
    const w = new AuditWriter(o)
    await w.#start()
    return w
  }

  // ── request path ──────────────────────────────────────────────────────────────────────────────────────────

  async begin (entry: AuditEntry): Promise<BeginResult> {
    if (this.#closed) return CLOSED
    // Past maxBacklog while the disk is at fault: refused at once, not after journalTimeoutMs. A write that has
    // failed is a fault now; one that has only not returned yet is judged once the I/O that came in meanwhile has
    // been read (see #deadline): after a turn held up past the timeout, its completion may be waiting in the poll.
    const full = this.#backlog() >= this.#o.maxBacklog && this.#health.failing()
    if (full && this.#health.failure !== null) return { durable: false, reason: this.#health.reason(this.#backlog()) ?? 'audit: backlog full' }
    return await new Promise<BeginResult>((resolve) => {
      const line = this.#journal.queueBegin(entry, () => { settleBegin(f, DURABLE) })
      const f: Inflight = { line, resolve, timer: null }
      const queuedAt = performance.now()
      f.timer = setTimeout(() => { this.#deadline(f, queuedAt) }, this.#o.journalTimeoutMs)
      this.#inflight.set(entry.requestId, f)
      this.#inflightBytes += line.bytes.length
      this.#open.add(entry.requestId)
      this.#schedule()
      if (full) {
        afterPoll(() => {
          if (f.resolve === null) return
          // still at fault: refused, and its line withdrawn here as the refusal at once never queued one (with
          // audit.onFailure serve the caller forwards it anyway and withdraws nothing: the line must not stay)
          if (this.#backlog() >= this.#o.maxBacklog && this.#health.failing()) this.#takeBack(entry.requestId, { durable: false, reason: this.#health.reason(this.#backlog()) ?? 'audit: backlog full' })
        })
      }
    })
  }

  /**
   * A begin's journalTimeoutMs has passed. It is judged after this turn's I/O (setImmediate runs after the poll
   * phase): when the event loop was held up (a long turn under a burst of requests, a GC pause), expired timers run
   * before the write completions that came in meanwhile, and a line already durable would be refused. And it is
   * judged by the disk, not by the clock alone: refused when writes are failing or one has not returned for
   * journalTimeoutMs, or once the line has waited twice that; otherwise its write is still within its time (it may
   * have been issued only after the loop came back), and the begin waits on.
   */
  #deadline (f: Inflight, queuedAt: number): void {
    f.timer = null
    setImmediate(() => {
      if (f.resolve === null) return
      if (this.#closed) { settleBegin(f, CLOSED); return }
      // monotonic: a wall clock stepped back must not stretch the wait
      const waited = Math.round(performance.now() - queuedAt)
      const limit = this.#o.journalTimeoutMs
      if (this.#health.failing() || waited >= 2 * limit) {
        // not failing and still waiting: its write went out late, held up by the event loop, not by the disk
        settleBegin(f, { durable: false, reason: this.#health.reason(this.#backlog()) ?? `audit: journal entry not durable within ${waited} ms (its write went out late: the gateway's event loop is overloaded; the disk answers within journalTimeoutMs)` })
        return
      }
      f.timer = setTimeout(() => { this.#deadline(f, queuedAt) }, Math.max(1, Math.min(limit - this.#health.stalledFor(), 2 * limit - waited)))
    })
  }

  /**
   * The request will not be forwarded (refused by its limits, or its entry was not durable in time): its journal
   * line is taken back if still queued, else an end line follows it, so recovery never writes `unknown` for it; its
   * final record, if any, comes through append as a record of its own. A begin() still waiting settles at once.
   */
  withdraw (requestId: string): void {
    this.#takeBack(requestId, WITHDRAWN)
  }

  /** The line of a begin taken back (cancelled while queued, else ended by an end line), the begin answered `r`. */
  #takeBack (requestId: string, r: BeginResult): void {
    const f = this.#forget(requestId)
    if (f === undefined) return
    if (!this.#journal.cancel(f.line)) {
      this.#journal.queueEnd(requestId)
      this.#schedule()
    }
    settleBegin(f, r)
  }

  append (entry: AuditEntry): void {
    if (this.#refuseAfterClose(entry.requestId)) return
    if (this.#unknownAtClose.has(entry.requestId)) {
      this.#log.error({ requestId: entry.requestId }, 'audit record arrived after close had recorded the interaction as unknown')
      return
    }
    const closes = this.#inflight.has(entry.requestId) ? entry.requestId : null
    // '{"kind":"interaction",' + the entry's own fields: the record without copying the entry object.
    this.#enqueue(Buffer.from('{"kind":"interaction",' + JSON.stringify(entry).slice(1)), entry.ts, closes)
    this.#settle(entry.requestId)
  }

  appendAdminChange (change: AdminChange): void {
    if (this.#refuseAfterClose(change.action)) return
    this.#enqueueEntry({ kind: 'admin', ...change, before: redactKeys(change.before), after: redactKeys(change.after) })
  }

  end (requestId: string): void {
    // No record will come: forget the begin (recovery only writes `unknown` for begins still in the journal).
    const f = this.#forget(requestId)
    if (f !== undefined && !f.line.cancelled) this.#journal.queueEnd(requestId)
    this.#settle(requestId)
  }

  /** The interaction is no longer open (its record is queued, or none will come). */
  #settle (requestId: string): void {
    if (this.#open.delete(requestId) && this.#open.size === 0) {
      const w = this.#openWaiters
      this.#openWaiters = []
      for (const r of w) r()
    }
  }

  #enqueueEntry (entry: AnyEntry): void {
    this.#enqueue(Buffer.from(JSON.stringify(entry)), entry.ts, null)
  }

  #refuseAfterClose (what: string): boolean {
    if (this.#closed) this.#log.error({ record: what }, 'audit record after close: not written')
    return this.#closed
  }

  #enqueue (json: Buffer, ts: string, closes: string | null): void {
    if (this.#backlog() >= this.#o.maxHeldRecords) {
      this.#drop(ts)
      return
    }
    this.#appended++
    this.#unsealed.push({ json, ts, closes, at: Date.now() })
    this.#unsealedBytes += json.length
    this.#schedule()
  }

  /** The in-memory backlog is full (writes have been failing for long): the record is lost, and counted. */
  #drop (ts: string): void {
    this.#dropped++
    const run = this.#droppedRun
    if (run === null) {
      this.#droppedRun = { count: 1, firstTs: ts, lastTs: ts }
      this.#log.error({ maxHeldRecords: this.#o.maxHeldRecords }, 'audit backlog full: records are being dropped until writes resume')
    } else {
      run.count++
      run.lastTs = ts
    }
  }

  /** Everything accepted and not yet durable. */
  #backlog (): number {
    return this.#unsealed.length + this.#sealed.length + this.#journal.pending
  }

  // ── group commit ──────────────────────────────────────────────────────────────────────────────────────────
  //
  // Two loops, each one write at a time: the journal's (begins wait for it: it runs whenever a line is queued) and
  // the records' (sealed batches, when due). They share the disk's health and backoff but never wait for each
  // other, so a begin waits for its own journal write alone, not for a segment's fdatasync that started first.

  /** Final records go to disk at the end of the window of their oldest, past flushBytes, for a digest or a flush. */
  #recordsDue (now: number): boolean {
    // sealed and not durable: a failed commit's batch, tried again first
    if (this.#sealed.length > 0 || this.#digestDue) return true
    const oldest = this.#unsealed[0]
    if (oldest === undefined) return false
    return this.#flushing > 0 || this.#unsealedBytes >= this.#o.flushBytes || now - oldest.at >= this.#o.fsyncIntervalMs
  }

  /** Arrange the next run of each loop: the journal's at once, the records' after their window (or the backoff). */
  #schedule (): void {
    if (this.#stopping) return
    const now = Date.now()
    const retryAt = this.#health.retryAt
    if (!this.#journalLoop.running && this.#journalDue()) {
      this.#journalLoop.wake.arm(retryAt > now ? retryAt : now, now)
    }
    if (!this.#recordsLoop.running) {
      let at: number | null = null
      if (this.#recordsDue(now)) at = now
      else if (this.#unsealed[0] !== undefined) at = this.#unsealed[0].at + this.#o.fsyncIntervalMs
      if (at !== null) this.#recordsLoop.wake.arm(Math.max(at, retryAt), now)
    }
  }

  #journalDue (): boolean {
    return this.#journal.pending > 0 || this.#compactDue()
  }

  /**
   * Compact the journal once what it holds beyond the open begins passes journalCompactBytes and the open begins
   * themselves (each compaction rewrites those: at most as many bytes as it drops); or at once when the file came
   * back shorter after a repair (rewritten from what is known to be open).
   */
  #compactDue (): boolean {
    if (this.#journal.lost) return true
    const obsolete = this.#journal.lineBytes - this.#inflightBytes
    return obsolete > this.#o.journalCompactBytes && obsolete > this.#inflightBytes
  }

  #hasWork (): boolean {
    return this.#backlog() > 0 || this.#digestDue
  }

  /**
   * One loop's writes, one at a time, while it has work and no backoff holds it; true when one failed. A loop is
   * well again once a write of its own succeeds or nothing it failed to write is left (its lines withdrawn); a
   * failure ends once every loop that failed is well and some write has succeeded since (health.ts): a journal
   * write that fits where a segment write does not (the last free bytes of a full disk) does not end the failure
   * the records loop is in.
   */
  async #run (loop: string, due: () => boolean, write: () => Promise<void>): Promise<boolean> {
    for (;;) {
      if (!due()) {
        this.#loopWell(loop, false)
        return false
      }
      if (this.#health.retryAt > Date.now()) return false
      this.#health.startCommit(loop)
      try {
        await write()
      } catch (err) {
        this.#failed(err, loop)
        return true
      } finally {
        this.#health.endCommit(loop)
      }
      this.#loopWell(loop, true)
    }
  }

  #loopWell (loop: string, wrote: boolean): void {
    const ended = this.#health.succeeded(loop, wrote)
    if (ended !== false) this.#resumed(ended)
  }

  #failed (err: unknown, loop: string): void {
    if (this.#health.failed(err, loop)) this.#log.error({ err, dir: this.dir, backlog: this.#backlog() }, 'audit write failed; records kept in order, retrying')
  }

  /** A loop stopped: flush() waiters learn of a failure now (and throw) rather than wait for the disk to come back. */
  #stopped (failed: boolean): void {
    if (failed) this.#failedSinceIdle = true
    if (!this.#journalLoop.running && !this.#recordsLoop.running && (this.#failedSinceIdle || !this.#hasWork())) {
      this.#failedSinceIdle = false
      const idle = this.#idle
      this.#idle = []
      for (const r of idle) r()
    }
    this.#schedule()
  }

  /** Seal what is queued and write the sealed batch (made durable); what failed stays sealed, in order. */
  async #commitRecords (): Promise<void> {
    for (const q of this.#unsealed) this.#sealed.push(this.#sealer.seal(q))
    this.#unsealed = []
    this.#unsealedBytes = 0
    const batch = this.#sealed
    let error: unknown = null
    try {
      await this.#segments.write(batch)
    } catch (err) {
      error = err ?? new Error('audit segment write failed')
    }
    const durable = this.#segments.durableSeq
    let n = 0
    for (; n < batch.length && (batch[n] as Item).seq <= durable; n++) this.#closeInflight((batch[n] as Item).closes)
    this.#sealed = batch.slice(n)
    if (n > 0) {
      this.#commits++
      this.#closedSeq = (batch[n - 1] as Item).seq
    }
    if (error !== null) throw error
    if (this.#digestDue) {
      this.#digestDue = false
      await this.#segments.digestOpen()
    }
  }

  /** A durable final record makes its journal entry obsolete (a line still queued is not written at all). */
  #closeInflight (requestId: string | null): void {
    if (requestId === null) return
    const f = this.#forget(requestId)
    if (f !== undefined) this.#journal.cancel(f.line)
  }

  #forget (requestId: string): Inflight | undefined {
    const f = this.#inflight.get(requestId)
    if (f === undefined) return undefined
    this.#inflight.delete(requestId)
    this.#inflightBytes -= f.line.bytes.length
    return f
  }

  /** After a commit: when it ends a failure (or a run of dropped records), say so in the chain itself. */
  #resumed (f: WriteFailure | null): void {
    if (f !== null) {
      const detail = { code: f.code, since: new Date(f.since).toISOString(), until: new Date().toISOString(), failedWrites: f.errors }
      this.#log.warn(detail, 'audit writes resumed; the backlog was written in order')
      // dropped too when there is no room yet: then counted in the run below, which the chain reports
      this.#enqueueEntry({ kind: 'system', ts: new Date().toISOString(), event: 'write-failure', detail })
    }
    const dropped = this.#droppedRun
    // No room for the report yet (a segment write still stalled, say): the run goes on counting until there is.
    if (dropped === null || this.#backlog() >= this.#o.maxHeldRecords) return
    this.#droppedRun = null
    this.#enqueueEntry({ kind: 'system', ts: new Date().toISOString(), event: 'records-dropped', detail: { ...dropped, maxHeldRecords: this.#o.maxHeldRecords } })
  }

  // ── start: recovery ───────────────────────────────────────────────────────────────────────────────────────

  async #start (): Promise<void> {
    await mkdir(join(this.dir, DIGEST_DIR), { recursive: true })
    if (this.#o.signer !== null) await publishKey(this.dir, this.#o.signer)
    await this.#digests.load()
    const { tip, segments, events } = await recoverChain(this.dir, this.writer, this.#digests)
    if (tip !== null) {
      this.#sealer.resume(tip.seq, tip.hash)
      this.#segments.durableSeq = tip.seq
      this.#closedSeq = tip.seq
    }
    // Interactions begun by the previous run (forwarded) with no record in the chain.
    const unknown = await Journal.leftovers(this.#journal.path, this.dir, segments)
    if (unknown.length > 0 || events.length > 0) {
      events.push({ kind: 'system', ts: new Date().toISOString(), event: 'recovered', detail: { unknownOutcomes: unknown.length, lastSeq: this.#sealer.seq } })
    }
    const now = new Date().toISOString()
    for (const s of events) this.#enqueueEntry(s)
    for (const e of unknown) this.#enqueueEntry({ kind: 'interaction', ...e, ts: now, status: null, tokensIn: null, tokensOut: null, latencyMs: null, outcome: 'unknown' })
    if (this.#backlog() > 0) {
      this.#log.warn({ unknownOutcomes: unknown.length, events: events.map((s) => s.event) }, 'audit log recovered after an unclean stop')
      // Durable before the old journal is replaced: a crash in between finds these records and writes no second one.
      await this.flush()
    }
    await this.#journal.compact(this.#sealer.seq + 1, [])
    this.#startTimers()
    if (this.#o.retentionDays !== undefined) await this.sweepRetention()
  }

  #startTimers (): void {
    if (this.#o.digestIntervalMs > 0) {
      this.#timers.push(setInterval(() => { this.#digestDue = true; this.#schedule() }, this.#o.digestIntervalMs))
    }
    if (this.#o.retentionDays !== undefined) {
      this.#timers.push(setInterval(() => {
        this.sweepRetention().catch((err: unknown) => { this.#log.error({ err }, 'audit retention sweep failed') })
      }, RETENTION_SWEEP_MS))
    }
    for (const t of this.#timers) t.unref()
  }

  /** One retention sweep (see retention.ts); returns how many segments were deleted. */
  async sweepRetention (): Promise<number> {
    const days = this.#o.retentionDays
    const sweep = async (): Promise<number> => {
      if (days === undefined || this.#closed) return 0
      return await sweepRetention({
        dir: this.dir,
        writer: this.writer,
        log: this.#log,
        current: () => this.#segments.current,
        record: async (e: SystemFields) => { this.#enqueueEntry(e); await this.flush() }
      }, days)
    }
    const run = this.#sweeping.then(sweep, sweep)
    this.#sweeping = run.catch(() => 0)
    return await run
  }

  // ── lifecycle ─────────────────────────────────────────────────────────────────────────────────────────────

  /** Write and fsync everything queued now (a failing disk is tried at once, backoff or not); throws if it fails. */
  async flush (): Promise<void> {
    if (this.#stopping || (!this.#journalLoop.running && !this.#recordsLoop.running && !this.#hasWork())) return
    const done = new Promise<void>((resolve) => { this.#idle.push(resolve) })
    this.#health.retryAt = 0
    this.#flushing++
    try {
      this.#journalLoop.wake.cancel()
      this.#recordsLoop.wake.cancel()
      this.#recordsLoop.start()
      this.#journalLoop.start()
      await done
    } finally {
      this.#flushing--
    }
    const left = this.#backlog()
    if (left > 0) throw new Error(`audit flush failed: ${left} record(s) not written (${this.#health.failure?.code ?? 'unknown error'})`)
  }

  stats (): AuditStats {
    const oldest = Math.min(this.#sealed[0]?.at ?? Infinity, this.#unsealed[0]?.at ?? Infinity, this.#journal.oldestAt ?? Infinity)
    return {
      queueDepth: this.#backlog(),
      lagSeconds: oldest === Infinity ? 0 : Math.max(0, Date.now() - oldest) / 1000,
      appended: this.#appended,
      durable: this.#segments.durableSeq,
      inFlight: this.#inflight.size,
      writeErrors: this.#health.writeErrors,
      commits: this.#commits,
      journalCommits: this.#journal.commits,
      lastSeq: this.#sealer.seq,
      dropped: this.#dropped,
      failing: this.#health.failing()
    }
  }

  health (): AuditHealth {
    if (this.#closed) return { ok: false, reasons: ['audit: the log is closed'] }
    const reason = this.#health.reason(this.#backlog())
    return reason === null ? { ok: true, reasons: [] } : { ok: false, reasons: [reason] }
  }

  /**
   * health() as /readyz reports it: a write that has only not returned yet is judged once the I/O that came in
   * meanwhile has been read, as begin() judges it (a turn held up past the timeout is no stalled disk).
   */
  async readiness (): Promise<AuditHealth> {
    if (this.#closed || this.#health.failure !== null || !this.#health.failing()) return this.health()
    await new Promise<void>((resolve) => { afterPoll(resolve) })
    return this.health()
  }

  /** No loop starts or is scheduled again; the one running (if any) is waited for. */
  async #halt (): Promise<void> {
    this.#stopping = true
    this.#journalLoop.wake.cancel()
    this.#recordsLoop.wake.cancel()
    await Promise.all([this.#journalLoop.last, this.#recordsLoop.last])
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
      const f = this.#inflight.get(id)
      if (f === undefined) continue
      this.append({ ...Journal.entryOf(f.line.bytes), ts: new Date().toISOString(), status: null, tokensIn: null, tokensOut: null, latencyMs: null, outcome: 'unknown' })
      this.#unknownAtClose.add(id)
      // a begin still waiting is answered now (its line may be cancelled by that record, and never written)
      settleBegin(f, CLOSED)
    }
    this.#closed = true
    for (const t of this.#timers) clearInterval(t)
    await this.#sweeping
    try {
      await this.flush()
    } catch (err) {
      // The disk failed at the end: stop retrying and let go of the files, the journal as it is, so the next start
      // records what it holds as `unknown` (and seals the segment); what was not written is named in the error.
      await this.#halt()
      await this.#segments.release()
      await this.#journal.close().catch(() => {})
      throw err
    }
    // Nothing is left to write; a loop the last one's end scheduled (a compaction) must not run beside what follows.
    await this.#halt()
    await this.#segments.finish()
    this.#inflight.clear()
    this.#inflightBytes = 0
    await this.#journal.compact(this.#sealer.seq + 1, [], false)
    await this.#journal.close()
  }
}

const DURABLE: BeginResult = Object.freeze({ durable: true })
const WITHDRAWN: BeginResult = Object.freeze({ durable: false, reason: 'audit: journal entry withdrawn' })
const CLOSED: BeginResult = Object.freeze({ durable: false, reason: 'audit: the log is closed' })

/**
 * `f` after the event loop's next poll phase: an immediate set from within the check phase runs in the next turn's,
 * so a poll phase lies between whichever phase this is called from and `f` (one immediate, called from the poll
 * phase, would run before the I/O that completed during that phase is read).
 */
function afterPoll (f: () => void): void {
  setImmediate(() => { setImmediate(f) })
}

/** A begin() answered once: durable, timed out or withdrawn, whichever comes first. */
function settleBegin (f: Inflight, r: BeginResult): void {
  const resolve = f.resolve
  if (resolve === null) return
  f.resolve = null
  if (f.timer !== null) clearTimeout(f.timer)
  f.timer = null
  resolve(r)
}

/**
 * One of the writer's two commit loops: one run at a time (`body`, true when a write failed), `after` once it
 * stops, and its next run armed on `wake`; it starts only while `allowed`.
 */
class Loop {
  running = false
  /** the latest run (close() waits for it) */
  last: Promise<void> | null = null
  readonly wake = new Wake(() => { this.start() })

  constructor (readonly body: () => Promise<boolean>, readonly after: (failed: boolean) => void, readonly allowed: () => boolean) {}

  start (): void {
    if (this.running || !this.allowed()) return
    this.last = this.#go()
  }

  async #go (): Promise<void> {
    this.running = true
    let failed = false
    try {
      failed = await this.body()
    } finally {
      this.running = false
      this.after(failed)
    }
  }
}

/** The next run of a loop: at the earliest time asked for; due now, in the check phase, so what arrives this turn shares it. */
class Wake {
  #at = Infinity
  #cancel: (() => void) | null = null

  constructor (readonly run: () => void) {}

  arm (at: number, now: number): void {
    if (this.#cancel !== null && this.#at <= at) return
    this.cancel()
    this.#at = at
    const fire = (): void => { this.#cancel = null; this.#at = Infinity; this.run() }
    if (at <= now) {
      const h = setImmediate(fire)
      this.#cancel = () => { clearImmediate(h) }
    } else {
      const h = setTimeout(fire, at - now)
      h.unref()
      this.#cancel = () => { clearTimeout(h) }
    }
  }

  cancel (): void {
    this.#cancel?.()
    this.#cancel = null
    this.#at = Infinity
  }
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
