import { parse, configPath, loadConfigOrExit } from './args.js'

export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } })
  const file = configPath(values.config)
  const loaded = await loadConfigOrExit(file)
  if (typeof loaded === 'number') return loaded
  process.stdout.write(`${file}: ok\n`)
  return 0
}
