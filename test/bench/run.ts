/**
 * `npm run bench [name …] [-- args]`: runs the benchmarks in this folder one after another (all by default),
 * each in its own process so one cannot warm or load another; each prints its own figures.
 *   npm run bench                      every benchmark
 *   npm run bench geo-lookup limits    just these
 */
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const all = readdirSync(here).filter((f) => f.endsWith('.ts') && f !== 'run.ts').map((f) => f.slice(0, -3)).sort()
const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const unknown = asked.filter((a) => !all.includes(a))
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; available: ${all.join(', ')}\n`)
  process.exit(2)
}
let failed = 0
for (const name of asked.length > 0 ? asked : all) {
  process.stdout.write(`\n=== ${name}\n`)
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, `${name}.ts`)], { stdio: 'inherit' })
  if (r.status !== 0) failed++
}
process.exit(failed === 0 ? 0 : 1)
