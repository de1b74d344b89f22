import { parse, configPath, loadConfigOrExit } from './args.js'

export const USAGE = `usage: geogate check-config [--config FILE]
  validate FILE (default: GEOGATE_CONFIG, else config/geogate.yaml) with the environment it will run with;
  prints "FILE: ok" (exit 0) or every error, one line each with its path (exit 1)
`

export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } })
  const file = configPath(values.config)
  const loaded = await loadConfigOrExit(file)
  if (typeof loaded === 'number') return loaded
  process.stdout.write(`${file}: ok\n`)
  return 0
}
