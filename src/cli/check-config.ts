import { parse, configPath } from './args.js'
import { loadConfig, ConfigError } from '../config/load.js'

export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } })
  const file = configPath(values.config)
  try {
    await loadConfig(file)
  } catch (err) {
    if (err instanceof ConfigError) { process.stderr.write(err.message + '\n'); return 1 }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') { process.stderr.write(`${file}: no such file\n`); return 1 }
    throw err
  }
  process.stdout.write(`${file}: ok\n`)
  return 0
}
