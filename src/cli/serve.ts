import { parse, configPath } from './args.js'
import { startGateway } from '../server.js'
import { ConfigError } from '../config/load.js'

export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } })
  let gw
  try {
    gw = await startGateway({ configFile: configPath(values.config) })
  } catch (err) {
    if (err instanceof ConfigError) { process.stderr.write(err.message + '\n'); return 1 }
    throw err
  }
  const stop = (signal: string): void => {
    gw.runtime.log.info({ signal }, 'shutting down')
    gw.shutdown().then(() => { process.exit(0) }, (err: unknown) => {
      gw.runtime.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => { stop('SIGTERM') })
  process.once('SIGINT', () => { stop('SIGINT') })
  // Reload: never throws; a refused file is logged with every error and the running policy stays.
  process.on('SIGHUP', () => { void gw.reload() })
  return 0
}
