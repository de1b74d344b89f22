import pino, { type Logger } from 'pino'

/**
 * The one place the log transport is chosen: JSON lines on stdout, never console. Written asynchronously: lines
 * queued while a write is in flight go out together in one write(2) (a synchronous write per line cost a syscall
 * per request); pino flushes what is queued synchronously on exit. A SIGKILL may lose the last lines of the log,
 * never an audit record (the audit log has its own fsync'd files).
 */
export function createLogger (level: string): Logger {
  return pino({
    level,
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie'], censor: '[redacted]' }
  }, pino.destination({ dest: 1, sync: false }))
}
