import pino, { type Logger } from 'pino'

/**
 * Lines are written once this many bytes are queued, or FLUSH_MS after the oldest, whichever comes first. Well under
 * the 4,096 bytes Linux writes to a pipe atomically (PIPE_BUF): `serve --workers N` shares one stdout, and a batch
 * written whole cannot interleave with another worker's inside a line. (A batch that grows past it while the
 * previous write is still in flight is not covered.)
 */
const BATCH_BYTES = 2048
const FLUSH_MS = 50

/**
 * The one place the log transport is chosen: JSON lines on stdout, never console. Written asynchronously and in
 * batches: lines are queued and go out together in one write(2) once BATCH_BYTES are queued or every FLUSH_MS (a
 * write per line cost a thread-pool trip and a system call per request: about 3 % of a request's CPU under load);
 * pino flushes what is queued synchronously on exit. A SIGKILL may lose the last FLUSH_MS of the log, never an audit
 * record (the audit log has its own durable files).
 */
export function createLogger (level: string): Logger {
  return pino({
    level,
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie'], censor: '[redacted]' }
  }, pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES, periodicFlush: FLUSH_MS }))
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
