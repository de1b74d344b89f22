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
