/**
 * `npm run bench [-- NAME [ARGS…]]`: run one benchmark (test/bench/NAME.ts) or, without a name, each in turn.
 * Each benchmark runs in its own process so one's heap and timers do not colour the next one's figures.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const [name, ...args] = process.argv.slice(2)
const all = readdirSync(here).filter((f) => f.endsWith('.ts') && f !== 'run.ts').map((f) => f.slice(0, -3)).sort()
const chosen = name === undefined ? all : [name]
let failed = 0
for (const b of chosen) {
  if (!all.includes(b)) {
    process.stderr.write(`no benchmark "${b}"; there are: ${all.join(', ')}\n`)
    process.exitCode = 2
    break
  }
  process.stdout.write(`\n== ${b}\n`)
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, `${b}.ts`), ...(name === undefined ? [] : args)], { stdio: 'inherit' })
  if (r.status !== 0) failed++
}
if (failed > 0) process.exitCode = 1
