import { parse, configPath } from './args.js'
import { startGateway } from '../server.js'
import { ConfigError } from '../config/load.js'

function ms (name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${v}"`)
  return n
}

export const USAGE = `usage: geogate serve [--config FILE] [--with-mock-backend [--mock-ttft-ms N] [--mock-itl-ms N]]
  run the gateway on FILE (default: GEOGATE_CONFIG, else config/geogate.yaml); --with-mock-backend also runs the
  mock accelerator on every backend URL that is on a loopback address. SIGHUP re-reads the file, SIGTERM drains.
`

/**
 * `geogate serve [--config FILE] [--with-mock-backend [--mock-ttft-ms N] [--mock-itl-ms N]]`.
 * Prints where it listens: a pino JSON line on stdout ("geogate listening") and one plain line on stderr.
 */
export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: 'string', short: 'c' },
    'with-mock-backend': { type: 'boolean' },
    'mock-ttft-ms': { type: 'string' },
    'mock-itl-ms': { type: 'string' }
  })
  let gw
  try {
    gw = await startGateway({
      configFile: configPath(values.config),
      withMockBackend: values['with-mock-backend'] === true,
      mockTtftMs: ms('mock-ttft-ms', values['mock-ttft-ms']),
      mockItlMs: ms('mock-itl-ms', values['mock-itl-ms'])
    })
  } catch (err) {
    if (err instanceof ConfigError) { process.stderr.write(err.message + '\n'); return 1 }
    throw err
  }
  const mocks = Object.entries(gw.mocks).map(([name, url]) => ` · mock backend ${name} ${url}`).join('')
  process.stderr.write(`geogate: data plane ${gw.url} · admin ${gw.adminUrl}${mocks}\n`)
  const running = gw
  const stop = (signal: string): void => {
    running.runtime.log.info({ signal }, 'shutting down')
    running.shutdown().then(() => { process.exit(0) }, (err: unknown) => {
      running.runtime.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => { stop('SIGTERM') })
  process.once('SIGINT', () => { stop('SIGINT') })
  // Reload: never throws; a refused file is logged with every error and the running policy stays.
  process.on('SIGHUP', () => { void running.reload() })
  return 0
}
