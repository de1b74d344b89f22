import { readFile, writeFile } from 'node:fs/promises'
import pino from 'pino'
import { parse, configPath, loadConfigOrExit } from './args.js'
import { openGeo } from '../geo/service.js'
import type { GeoLookup } from '../geo/types.js'
import { isoBound } from '../audit/read.js'
import { parsePolicyTests, runPolicyTests, formatPolicyTestResults, policyTestJunit, PolicyTestFileError, type PolicyTest } from '../policy/policy-tests.js'
import { diffPolicies, formatPolicyDiff } from '../policy/diff.js'
import { replayAudit, formatReplay, replayCsv, replayHtml } from '../policy/replay.js'

const USAGE = `usage: geogate policy test FILE… [--config FILE] [--junit FILE]
         expectations (YAML) run offline against the configuration; exit 1 with every failure
       geogate policy diff OLD NEW [--at TIME] [--json]
         what changes between two configurations' policies, for a reviewer
       geogate policy replay --audit DIR --config NEW [--from T] [--to T] [--format text|json|csv|html]
         re-decide every recorded interaction under NEW: what is newly refused, newly allowed (progress on stderr)
`

function usage (why: string): number {
  process.stderr.write(`geogate policy: ${why}\n${USAGE}`)
  return 2
}

async function test (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { config: { type: 'string', short: 'c' }, junit: { type: 'string' } }, true)
  if (positionals.length === 0) return usage('policy test needs at least one test file')
  const loaded = await loadConfigOrExit(configPath(values.config))
  if (typeof loaded === 'number') return loaded
  const cases: Array<{ test: PolicyTest, id: string }> = []
  for (const file of positionals) {
    try {
      const parsed = parsePolicyTests(await readFile(file, 'utf8'), file)
      parsed.tests.forEach((t, i) => { cases.push({ test: t, id: `${file}#${i + 1}` }) })
    } catch (err) {
      if (err instanceof PolicyTestFileError) { process.stderr.write(`${err.message}\n`); return 1 }
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') { process.stderr.write(`${file}: no such file\n`); return 1 }
      throw err
    }
  }
  // The GeoIP databases are opened only when some case gives an address.
  let geo: GeoLookup | null = null
  if (cases.some((c) => c.test.who.ip !== undefined)) geo = await openGeo(loaded.config.geo, loaded.baseDir, pino({ level: 'silent' }))
  try {
    const results = runPolicyTests(cases, loaded.config, geo)
    process.stdout.write(formatPolicyTestResults(results))
    if (values.junit !== undefined) await writeFile(values.junit, policyTestJunit(results))
    return results.every((r) => r.ok) ? 0 : 1
  } finally {
    await geo?.close()
  }
}

async function diff (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { at: { type: 'string' }, json: { type: 'boolean' } }, true)
  const [oldFile, newFile] = positionals
  if (oldFile === undefined || newFile === undefined || positionals.length !== 2) return usage('policy diff needs OLD and NEW configuration files')
  const at = values.at === undefined ? Date.now() : Date.parse(values.at)
  if (Number.isNaN(at)) return usage(`--at: not a date and time: ${values.at ?? ''}`)
  const a = await loadConfigOrExit(oldFile)
  if (typeof a === 'number') return a
  const b = await loadConfigOrExit(newFile)
  if (typeof b === 'number') return b
  const d = diffPolicies(a.config, b.config, at)
  process.stdout.write(values.json === true ? JSON.stringify(d, null, 2) + '\n' : formatPolicyDiff(d))
  return 0
}

async function replay (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    audit: { type: 'string' },
    config: { type: 'string', short: 'c' },
    from: { type: 'string' },
    to: { type: 'string' },
    format: { type: 'string', default: 'text' }
  })
  const format = values.format
  if (values.config === undefined) return usage('policy replay needs --config NEW (the candidate)')
  if (format !== 'text' && format !== 'json' && format !== 'csv' && format !== 'html') return usage(`--format text|json|csv|html, not ${format}`)
  const candidate = await loadConfigOrExit(values.config)
  if (typeof candidate === 'number') return candidate
  const dir = values.audit
  if (dir === undefined) return usage('policy replay needs --audit DIR')
  let filter
  try {
    filter = { from: isoBound(values.from, '--from'), to: isoBound(values.to, '--to') }
  } catch (err) {
    return usage((err as Error).message)
  }
  const started = Date.now()
  const report = await replayAudit(dir, candidate.config, {
    filter,
    onProgress: (n) => { process.stderr.write(`replay: ${n} record(s) re-decided\n`) }
  })
  const out = format === 'json' ? JSON.stringify(report, null, 2) + '\n' : format === 'csv' ? replayCsv(report) : format === 'html' ? replayHtml(report) : formatReplay(report)
  process.stdout.write(out)
  process.stderr.write(`replay: ${report.records} record(s) in ${((Date.now() - started) / 1000).toFixed(2)} s: ${report.newlyRefused} newly refused, ${report.newlyAllowed} newly allowed\n`)
  return 0
}

/** `geogate policy test | diff | replay`. */
export async function run (argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  try {
    if (sub === 'test') return await test(rest)
    if (sub === 'diff') return await diff(rest)
    if (sub === 'replay') return await replay(rest)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ||
      (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return usage((err as Error).message)
    throw err
  }
  return usage(sub === undefined ? 'which one: test, diff or replay?' : `unknown subcommand "${sub}"`)
}
