/* The built `geogate policy test | diff`, as a process (npm test builds dist/ first). */
import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../helpers/process.js'

const PACK = 'config/packs/us-ai-export-tiers.example.yaml'
const PACK_TESTS = 'config/packs/tests/us-ai-export-tiers.test.yaml'

t.test('the shipped example pack passes its test file', async (t) => {
  const r = await runCli(['policy', 'test', '--config', PACK, PACK_TESTS])
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : r.stdout + r.stderr)
  t.match(r.stdout, /\n(\d+) passed, 0 failed/)
  t.notMatch(r.stdout, /FAILED/)
})

t.test('a test file with one wrong expectation exits 1 and names it, with what differs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-policy-test-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'wrong.yaml')
  await writeFile(file, `tests:
  - name: the US gets the controlled model
    who: { ip: 8.8.8.8, key: demo-tier1 }
    what: { model: frontier-1 }
    expect: { status: 200, rule: allow }
  - name: Syria is embargoed (no longer true)
    who: { country: SY, key: demo-tier1 }
    what: { model: llama-3.1-8b }
    expect: { status: 451, rule: location:embargoed }
  - who: { country: CU, tier: allied }
    what: { model: llama-3.1-8b }
    expect: { status: 451 }
`)
  const junit = join(dir, 'junit.xml')
  const r = await runCli(['policy', 'test', '--config', PACK, file, '--junit', junit])
  t.equal(r.code, 1, 'exit 1')
  t.match(r.stdout, `FAILED ${file}#2  Syria is embargoed (no longer true)`, 'names the failed expectation')
  t.match(r.stdout, /status\s+expected 451, got 200/)
  t.match(r.stdout, /rule\s+expected location:embargoed, got tier:syria-ear99:max-output-tokens:clamp/)
  t.match(r.stdout, /location tier syria-ear99/)
  t.equal(r.stdout.match(/^FAILED/gm)?.length, 1, 'only that one failed')
  t.match(r.stdout, /2 passed, 1 failed, 3 expectation\(s\)/)
  const xml = await readFile(junit, 'utf8')
  t.match(xml, /<testsuite name="[^"]+wrong\.yaml" tests="3" failures="1" errors="0">/)
  t.match(xml, /<failure message="status: expected 451, got 200; rule: expected location:embargoed, got tier:syria-ear99:max-output-tokens:clamp"\/>/)

  await writeFile(file, 'tests:\n  - who: { country: Syria }\n    what: {}\n    expect: { status: 999 }\n')
  const bad = await runCli(['policy', 'test', '--config', PACK, file])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /\/tests\/0\/who\/country/, 'a broken test file is refused with where')

  const usage = await runCli(['policy', 'test', '--config', PACK])
  t.equal(usage.code, 2)
})

t.test('policy diff says what changes for a reviewer', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-policy-diff-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const text = await readFile(PACK, 'utf8')
  const next = text
    .replace('embargoed: [CU, IR, KP, UA-43', 'embargoed: [CU, IR, KP, VE, UA-43')
    .replace('restricted: [AF, BY, MM, KH, CF, CN, HK, MO, CD, ER, HT, IQ, LB, LY, RU, SO, SS, SD, VE, ZW]', 'restricted: [AF, BY, MM, KH, CF, CN, HK, MO, CD, ER, HT, IQ, LB, LY, RU, SO, SS, SD, ZW]')
    .replace('capabilities: [chat, embeddings]\n    maxOutputTokens: 1024', 'capabilities: [chat, embeddings, tools]\n    maxOutputTokens: 512')
    .replace('tier: standard }', 'tier: allied }')
  t.not(next, text)
  const file = join(dir, 'next.yaml')
  await writeFile(file, next)
  const r = await runCli(['policy', 'diff', PACK, file])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /locations:\n\s+VE\s+restricted → embargoed/)
  t.match(r.stdout, /restricted\s+gains capabilities tools/)
  t.match(r.stdout, /restricted\s+maxOutputTokens 1024 → 512/)
  t.match(r.stdout, /keys:\n\s+demo-tier2\s+tier standard → allied/)
  t.match(r.stdout, /: 4 change\(s\)/)
  const same = await runCli(['policy', 'diff', PACK, PACK])
  t.match(same.stdout, /no change in what the policy decides/)
})
