import { parseArgs, type ParseArgsConfig } from 'node:util'
import { loadConfig, ConfigError, type LoadedConfig } from '../config/load.js'

/** node:util parseArgs with strict checking; returns the values or throws a usage error. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>> (argv: string[], options: T, allowPositionals = false): ReturnType<typeof parseArgs<{ args: string[], options: T, allowPositionals: boolean, strict: true }>> {
  return parseArgs({ args: argv, options, allowPositionals, strict: true })
}

export function configPath (given: string | undefined): string {
  return given ?? process.env.GEOGATE_CONFIG ?? 'config/geogate.yaml'
}

/**
 * Load the configuration for a command: on a bad or missing file, print why on stderr and give back the exit
 * code (1) instead, so every command reports configuration problems the same way.
 */
export async function loadConfigOrExit (file: string): Promise<LoadedConfig | number> {
  try {
    return await loadConfig(file)
  } catch (err) {
    if (err instanceof ConfigError) { process.stderr.write(err.message + '\n'); return 1 }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') { process.stderr.write(`${file}: no such file\n`); return 1 }
    throw err
  }
}
