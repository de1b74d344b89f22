#!/usr/bin/env node
/** The geogate command. Each subcommand lives in its own module and returns an exit code. */

export type Command = (argv: string[]) => Promise<number>

const commands: Record<string, { describe: string, load: () => Promise<{ run: Command }> }> = {
  serve: { describe: 'run the gateway (--config FILE, or GEOGATE_CONFIG)', load: async () => await import('./serve.js') },
  'check-config': { describe: 'validate a configuration file and print every error', load: async () => await import('./check-config.js') },
  'mock-backend': { describe: 'run the mock OpenAI-compatible accelerator (--port N)', load: async () => await import('./mock-backend.js') },
  explain: { describe: 'why would IP X with key Y get model Z? (--ip --key-id --model [--endpoint])', load: async () => await import('./explain.js') },
  keys: { describe: 'create, list, rotate and revoke API keys', load: async () => await import('./keys.js') },
  screening: { describe: 'screening import FILE | info | check: the denied-party list', load: async () => await import('./screening.js') },
  geodb: { describe: 'geodb info | geodb lookup IP: inspect the GeoIP databases', load: async () => await import('./geodb.js') },
  audit: { describe: 'audit verify DIR | export | query DIR SQL | keygen: check, pull and query the audit log', load: async () => await import('./audit.js') },
  policy: { describe: 'policy test FILE… | diff OLD NEW | replay --audit DIR --config NEW: change policy safely', load: async () => await import('./policy.js') },
  report: { describe: 'usage report per period × country × model × tier', load: async () => await import('./report.js') },
  schema: { describe: 'print the configuration JSON Schema', load: async () => await import('./schema.js') }
}

function usage (): string {
  return 'usage: geogate <command> [options]\n\n' +
    Object.entries(commands).map(([n, c]) => `  ${n.padEnd(14)} ${c.describe}`).join('\n') + '\n'
}

async function main (argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage())
    return name === undefined ? 1 : 0
  }
  const cmd = commands[name]
  if (cmd === undefined) {
    process.stderr.write(`geogate: unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  return await (await cmd.load()).run(rest)
}

main(process.argv.slice(2)).then((code) => {
  if (code !== 0 || process.argv[2] !== 'serve') process.exitCode = code
}, (err: unknown) => {
  process.stderr.write(`geogate: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
