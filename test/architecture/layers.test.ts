/*
 * The dependency rule (.dependency-cruiser.cjs) holds for src/, and it is a rule that can fail: the same check,
 * run on a copy of src/ with one import that breaks it, names that import.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from '../helpers/process.js'

const run = promisify(execFile)
const depcruise = join(ROOT, 'node_modules', '.bin', 'depcruise')

async function cruise (cwd: string): Promise<{ code: number, out: string }> {
  try {
    const r = await run(depcruise, ['src', '--config', join(ROOT, '.dependency-cruiser.cjs'), '--output-type', 'err'], { cwd })
    return { code: 0, out: r.stdout }
  } catch (err) {
    const e = err as { code?: number, stdout?: string }
    return { code: e.code ?? -1, out: e.stdout ?? '' }
  }
}

t.test('src/ keeps the layer rule', async (t) => {
  const r = await cruise(ROOT)
  t.equal(r.code, 0, r.out)
})

t.test('an import from a lower layer up into a higher one fails the check, named', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gg-layers-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await cp(join(ROOT, 'src'), join(dir, 'src'), { recursive: true })
  await cp(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'))
  await writeFile(join(dir, 'src', 'core', 'upward.ts'), "import type { Runtime } from '../runtime.js'\nexport type R = Runtime\n")
  await writeFile(join(dir, 'src', 'stray.ts'), "import type { Usage } from './core/types.js'\nexport type U = Usage\n")
  const r = await cruise(dir)
  t.not(r.code, 0)
  t.match(r.out, /layer:core: src\/core\/upward\.ts → src\/runtime\.ts/)
  t.match(r.out, /layer:unplaced: src\/stray\.ts/)
})
