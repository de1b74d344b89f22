import pino, { type Logger } from 'pino'

/** The one place the log transport is chosen: JSON lines on stdout (pino's default), never console. */
export function createLogger (level: string): Logger {
  return pino({
    level,
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie'], censor: '[redacted]' }
  })
}
