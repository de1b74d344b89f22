import { parseArgs, type ParseArgsConfig } from 'node:util'

/** node:util parseArgs with strict checking; returns the values or throws a usage error. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>> (argv: string[], options: T, allowPositionals = false): ReturnType<typeof parseArgs<{ args: string[], options: T, allowPositionals: boolean, strict: true }>> {
  return parseArgs({ args: argv, options, allowPositionals, strict: true })
}

export function configPath (given: string | undefined): string {
  return given ?? process.env.GEOGATE_CONFIG ?? 'config/geogate.yaml'
}
