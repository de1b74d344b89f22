/**
 * Whether the writer can make records durable: the last write failure (errno and since when), a write that has
 * not returned for too long (a dead mount blocks rather than fails), and the retry backoff. /readyz and the
 * refusal of new interactions read it; the writer's commit loop feeds it.
 */
import { errorCode } from './files.js'

const RETRY_MIN_MS = 50
const RETRY_MAX_MS = 2000

export interface WriteFailure { code: string, since: number, errors: number }

export class WriteHealth {
  #failure: WriteFailure | null = null
  #delay = 0
  /** when each loop's write in progress started (journal, records) */
  readonly #started = new Map<string, number>()
  /** no commit is attempted before this (Date.now()), unless a flush asks */
  retryAt = 0
  writeErrors = 0

  constructor (readonly dir: string, readonly stallMs: number) {}

  get failure (): WriteFailure | null { return this.#failure }

  /** monotonic (performance.now()): a wall clock stepped back must not hide a stall, nor a step forward make one */
  startCommit (loop: string): void { this.#started.set(loop, performance.now()) }
  endCommit (loop: string): void { this.#started.delete(loop) }

  /** the loops (journal, records) whose last write failed and that still have what failed to write */
  readonly #failedLoops = new Set<string>()
  /** a write succeeded since the failure began: the disk has taken one */
  #wroteSince = false

  /** A loop's write failed: back off (doubling, up to 2 s) and remember why. Returns true when it is a new failure. */
  failed (err: unknown, loop: string): boolean {
    this.#failedLoops.add(loop)
    if (this.#failure === null) this.#wroteSince = false
    this.writeErrors++
    this.#delay = Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, this.#delay * 2))
    this.retryAt = Date.now() + this.#delay
    const code = errorCode(err)
    if (this.#failure === null) {
      this.#failure = { code, since: Date.now(), errors: 1 }
      return true
    }
    this.#failure.code = code
    this.#failure.errors++
    return false
  }

  /**
   * A loop's write succeeded (`wrote`), or the loop has nothing left that failed to be written (its lines were
   * withdrawn). The failure ends once no loop is left failing and a write has succeeded since it began: a loop
   * that merely has nothing to do proves nothing about the disk. false while it goes on (its backoff and count
   * too); else the failure this ends, or null when there was none.
   */
  succeeded (loop: string, wrote: boolean): WriteFailure | null | false {
    this.#failedLoops.delete(loop)
    if (wrote) this.#wroteSince = true
    if (this.#failure === null) return null
    if (this.#failedLoops.size > 0 || !this.#wroteSince) return false
    const f = this.#failure
    this.#failure = null
    this.#delay = 0
    this.retryAt = 0
    return f
  }

  /** Writes are failing, or one has been stuck for longer than stallMs (`now`: performance.now(), the stall's clock). */
  failing (now = performance.now()): boolean {
    return this.#failure !== null || this.stalledFor(now) > this.stallMs
  }

  reason (backlog: number, now = performance.now()): string | null {
    const f = this.#failure
    if (f !== null) return `audit: ${f.code} writing ${this.dir} since ${new Date(f.since).toISOString()} (${backlog} record(s) not durable)`
    const stalled = this.stalledFor(now)
    if (stalled > this.stallMs) return `audit: a write to ${this.dir} has not returned for ${(stalled / 1000).toFixed(1)} s (${backlog} record(s) not durable)`
    return null
  }

  /** how long the oldest write in progress has gone without returning, ms (0: none in progress) */
  stalledFor (now = performance.now()): number {
    let oldest = now
    for (const t of this.#started.values()) if (t < oldest) oldest = t
    return now - oldest
  }
}
