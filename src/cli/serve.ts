import { parse, configPath } from './args.js'
import { startGateway, type RunningGateway, type StartOptions } from '../server.js'
import { ConfigError, loadConfig } from '../config/load.js'
import { isWorker, runPrimary, runWorker, workerCount } from './workers.js'

/** longest a stopping gateway waits for its log's last lines to be written */
const EXIT_LOG_MS = 2000

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
 * `geogate serve [--config FILE] [--workers N|auto] [--with-mock-backend [--mock-ttft-ms N] [--mock-itl-ms N]]`.
 * Prints where it listens: a pino JSON line on stdout ("geogate listening") and one plain line on stderr.
 * With more than one worker (cli/workers.ts) this process is the primary and the gateways run in its workers.
 */
export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: 'string', short: 'c' },
    workers: { type: 'string', short: 'w' },
    'with-mock-backend': { type: 'boolean' },
    'mock-ttft-ms': { type: 'string' },
    'mock-itl-ms': { type: 'string' }
  })
  const opts: StartOptions = {
    configFile: configPath(values.config),
    withMockBackend: values['with-mock-backend'] === true,
    mockTtftMs: ms('mock-ttft-ms', values['mock-ttft-ms']),
    mockItlMs: ms('mock-itl-ms', values['mock-itl-ms'])
  }
  let gw: RunningGateway
  try {
    if (isWorker()) {
      gw = await runWorker(opts)
    } else {
      const loaded = await loadConfig(opts.configFile)
      const n = workerCount(values.workers, loaded.config)
      if (n > 1) {
        const code = await runPrimary(n, loaded, opts)
        process.exit(code)
      }
      gw = await startGateway(opts)
      const mocks = Object.entries(gw.mocks).map(([name, url]) => ` · mock backend ${name} ${url}`).join('')
      process.stderr.write(`geogate: data plane ${gw.url} · admin ${gw.adminUrl}${mocks}\n`)
    }
  } catch (err) {
    if (err instanceof ConfigError) { process.stderr.write(err.message + '\n'); return 1 }
    throw err
  }
  const running = gw
  // The log's last lines are written before the process ends (process.exit would only write what is still queued,
  // out of order with a write in flight); a stdout nobody reads holds the exit back EXIT_LOG_MS at most.
  const exitAfterLog = (code: number): void => {
    const timer = setTimeout(() => { process.exit(code) }, EXIT_LOG_MS)
    running.runtime.log.flush(() => { clearTimeout(timer); process.exit(code) })
  }
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    running.runtime.log.info({ signal }, 'shutting down')
    running.shutdown().then(() => { exitAfterLog(0) }, (err: unknown) => {
      running.runtime.log.error({ err }, 'shutdown failed')
      exitAfterLog(1)
    })
  }
  process.once('SIGTERM', () => { stop('SIGTERM') })
  process.once('SIGINT', () => { stop('SIGINT') })
  // A worker whose primary is gone (killed without a chance to stop it) drains and exits rather than linger.
  if (isWorker()) process.once('disconnect', () => { stop('disconnect') })
  // Reload: never throws; a refused file is logged with every error and the running policy stays.
  process.on('SIGHUP', () => { void running.reload() })
  return 0
}
