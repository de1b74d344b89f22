import pino, { type Logger } from 'pino'
import sonicBoom from 'sonic-boom'

// sonic-boom is CommonJS (module.exports = the class) while its types declare an ES default export: what Node's
// default import gives is the class itself
const SonicBoom = sonicBoom as unknown as typeof sonicBoom.default
type SonicBoom = InstanceType<typeof SonicBoom>

/**
 * Lines are written once this many bytes are queued, or FLUSH_MS after the oldest, whichever comes first. Well under
 * the 4,096 bytes Linux writes to a pipe atomically (PIPE_BUF): `serve --workers N` shares one stdout, and a batch
 * written whole cannot interleave with another worker's inside a line. (A batch that grows past it while the
 * previous write is still in flight is not covered.)
 */
const BATCH_BYTES = 2048
const FLUSH_MS = 50

/**
 * The batch in front of the file descriptor's writer (sonic-boom). Lines are kept as a list and joined once per
 * batch: sonic-boom's own batching appends each line to one string and measures that string's UTF-8 length on
 * every write, which flattens it each time (a copy of the whole batch so far per line: ~4 KB of garbage and ~1 µs
 * per access line). The writer below gets one string per batch and writes it as it comes (minLength 1: at once,
 * while its flush(cb) still waits for what it holds; with 0 it would call back at once).
 */
export class LineBatch {
  #lines: string[] = []
  #bytes = 0
  readonly #out: SonicBoom
  #timer: NodeJS.Timeout | null = null

  /** stdout's reader is gone (EPIPE): lines are dropped from then on, as pino's own destination does */
  #broken = false

  constructor (out: SonicBoom, readonly batchBytes = BATCH_BYTES, readonly flushMs = FLUSH_MS) {
    this.#out = out
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EPIPE') {
        this.#broken = true
        this.#lines = []
        return
      }
      // any other write error is the process's to handle, as with pino.destination()
      out.removeListener('error', onError)
      out.emit('error', err)
    }
    out.on('error', onError)
    atExit(this)
  }

  write (line: string): boolean {
    if (this.#broken) return true
    this.#lines.push(line)
    this.#bytes += Buffer.byteLength(line)
    if (this.#bytes >= this.batchBytes) this.#push()
    else if (this.#timer === null) this.#timer = setTimeout(() => { this.#timer = null; this.#push() }, this.flushMs).unref()
    return true
  }

  /** Queued lines go to the writer, then `cb` once it has written everything. */
  flush (cb?: (err?: Error) => void): void {
    this.#push()
    if (this.#broken) cb?.()
    else this.#out.flush(cb)
  }

  /** Queued lines go to the writer, which writes them asynchronously; nothing at all when none are queued. */
  release (): void {
    this.#push()
  }

  flushSync (): void {
    this.#push()
    if (!this.#broken) this.#out.flushSync()
  }

  #push (): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    if (this.#lines.length === 0 || this.#broken) return
    const text = this.#lines.length === 1 ? this.#lines[0] as string : this.#lines.join('')
    this.#lines = []
    this.#bytes = 0
    this.#out.write(text)
  }
}

/**
 * Before the process ends, whatever a batch holds is written: on a natural end (beforeExit) asynchronously, the loop
 * still running; on exit (process.exit, a signal handler's exit) synchronously. The writers are this module's own
 * (not pino.destination's, whose exit hook would end them before these run). Held weakly: a logger dropped (a
 * server built and closed in a test) is not kept alive.
 */
const batches = new Set<WeakRef<LineBatch>>()
function atExit (b: LineBatch): void {
  if (batches.size === 0) {
    const each = (f: (b: LineBatch) => void): void => {
      for (const ref of batches) {
        const batch = ref.deref()
        if (batch === undefined) continue
        try { f(batch) } catch { /* a closed descriptor: nothing more can be written */ }
      }
    }
    // only the lines still queued; more work here (a flush of an idle writer) would end the loop again with another beforeExit, for ever
    process.on('beforeExit', () => { each((x) => { x.release() }) })
    process.once('exit', () => { each((x) => { x.flushSync() }) })
  }
  if (batches.size >= 64) for (const ref of batches) if (ref.deref() === undefined) batches.delete(ref)
  batches.add(new WeakRef(b))
}

/**
 * The one place the log transport is chosen: JSON lines on stdout, never console. Written asynchronously and in
 * batches: lines are queued and go out together in one write(2) once BATCH_BYTES are queued or every FLUSH_MS (a
 * write per line cost a thread-pool trip and a system call per request: about 3 % of a request's CPU under load);
 * what is queued is flushed synchronously on exit. A SIGKILL may lose the last FLUSH_MS of the log, never an audit
 * record (the audit log has its own durable files).
 */
export function createLogger (level: string): Logger {
  return pino({
    level,
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie'], censor: '[redacted]' }
  }, new LineBatch(new SonicBoom({ fd: 1, sync: false, minLength: 1 })))
}

type LogArgs = [obj: unknown, msg?: string, ...args: unknown[]]

/**
 * A request's logger: the pino child carrying its reqId is made on the first line the request logs, not for every
 * request. Most requests log one line, the access line, which app.ts writes through the parent with the reqId in
 * the line (the same bytes a child writes: its bindings come first), so under load a child is rarely made at all.
 */
export class RequestLogger {
  #child: Logger | null = null
  readonly #parent: Logger
  readonly #bindings: pino.Bindings
  readonly #opts: pino.ChildLoggerOptions

  constructor (parent: Logger, bindings: pino.Bindings, opts: pino.ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#opts = opts
  }

  get #log (): Logger {
    this.#child ??= this.#parent.child(this.#bindings, this.#opts)
    return this.#child
  }

  get level (): string { return this.#child?.level ?? this.#opts.level ?? this.#parent.level }
  set level (level: string) { this.#log.level = level }

  fatal (...a: LogArgs): void { this.#log.fatal(...(a as [unknown])) }
  error (...a: LogArgs): void { this.#log.error(...(a as [unknown])) }
  warn (...a: LogArgs): void { this.#log.warn(...(a as [unknown])) }
  info (...a: LogArgs): void { this.#log.info(...(a as [unknown])) }
  debug (...a: LogArgs): void { this.#log.debug(...(a as [unknown])) }
  trace (...a: LogArgs): void { this.#log.trace(...(a as [unknown])) }
  silent (): void {}
  child (bindings: pino.Bindings, opts?: pino.ChildLoggerOptions): Logger { return this.#log.child(bindings, opts) }
  isLevelEnabled (level: string): boolean { return this.#child !== null || this.#opts.level !== undefined ? this.#log.isLevelEnabled(level) : this.#parent.isLevelEnabled(level) }
  bindings (): pino.Bindings { return this.#log.bindings() }
  setBindings (bindings: pino.Bindings): void { this.#log.setBindings(bindings) }
  flush (cb?: (err?: Error) => void): void { this.#parent.flush(cb) }
  get levels (): pino.LevelMapping { return this.#parent.levels }
}
