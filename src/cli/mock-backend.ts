import { parse } from './args.js'
import { createLogger } from '../infra/logger.js'
import { startMockBackend } from '../mock/server.js'

function int (name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${v}"`)
  return n
}

export const USAGE = `usage: geogate mock-backend [--port N] [--host H] [--ttft-ms N] [--itl-ms N] [--max-tokens N] [--api-key K] [--log-level L]
  run the mock OpenAI-compatible accelerator (default 127.0.0.1:8000) until SIGTERM/SIGINT; a request with
  "tools" is answered with a call of its first tool (see README, "The mock backend")
`

/** `geogate mock-backend --port N [--host H] [--ttft-ms N] [--itl-ms N] [--api-key K]`: runs until SIGTERM/SIGINT. */
export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    port: { type: 'string', short: 'p' },
    host: { type: 'string' },
    'ttft-ms': { type: 'string' },
    'itl-ms': { type: 'string' },
    'max-tokens': { type: 'string' },
    'api-key': { type: 'string' },
    'log-level': { type: 'string' }
  })
  const log = createLogger(values['log-level'] ?? 'info')
  const mock = await startMockBackend({
    host: values.host ?? '127.0.0.1',
    port: int('port', values.port, 8000),
    ttftMs: int('ttft-ms', values['ttft-ms'], 150),
    itlMs: int('itl-ms', values['itl-ms'], 20),
    defaultMaxTokens: int('max-tokens', values['max-tokens'], 16),
    apiKey: values['api-key'] ?? process.env.MOCK_API_KEY,
    log
  })
  process.stderr.write(`geogate mock backend listening on ${mock.url}\n`)
  const stop = (): void => { mock.close().then(() => { process.exit(0) }, () => { process.exit(1) }) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  return 0
}
