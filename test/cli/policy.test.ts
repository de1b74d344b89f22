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

t.test('a schedule in the configuration: policy test `when`, explain --at, and diff of what is scheduled', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-policy-when-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const scheduled = (await readFile(PACK, 'utf8')) + `
schedule:
  - effectiveFrom: 2027-01-15T00:00:00Z
    note: Venezuela embargoed (test)
    locations:
      tiers:
        embargoed: [CU, IR, KP, VE, UA-43, UA-40, UA-14, UA-09]
`
  const config = join(dir, 'scheduled.yaml')
  await writeFile(config, scheduled)
  const check = await runCli(['check-config', '--config', config])
  t.equal(check.code, 0, check.stderr)
  const tests = join(dir, 'when.yaml')
  await writeFile(tests, `tests:
  - who: { country: VE, key: demo-tier1 }
    what: { model: llama-3.1-8b, maxTokens: 100 }
    when: 2027-01-14T23:59:59Z
    expect: { status: 200, locationTier: restricted }
  - who: { country: VE, key: demo-tier1 }
    what: { model: llama-3.1-8b, maxTokens: 100 }
    when: 2027-01-15T00:00:00Z
    expect: { status: 451, rule: location:embargoed }
`)
  const r = await runCli(['policy', 'test', '--config', config, tests])
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, /2 passed, 0 failed/)
  // explain as of either side of the instant: the policy version in force then
  const before = await runCli(['explain', '--config', config, '--ip', '8.8.8.8', '--key-id', 'demo-tier1', '--model', 'frontier-1', '--at', '2027-01-14T00:00:00Z', '--json'])
  const after = await runCli(['explain', '--config', config, '--ip', '8.8.8.8', '--key-id', 'demo-tier1', '--model', 'frontier-1', '--at', '2027-01-16T00:00:00Z', '--json'])
  t.equal(before.code, 0, before.stderr)
  const [pb, pa] = [before, after].map((x) => (JSON.parse(x.stdout) as { policy: { hash: string, at: string } }).policy)
  t.equal(pb?.at, '2027-01-14T00:00:00.000Z')
  t.not(pb?.hash, pa?.hash, 'explain --at names the version in force then')
  const bad = await runCli(['explain', '--config', config, '--ip', '8.8.8.8', '--key-id', 'demo-tier1', '--model', 'frontier-1', '--at', 'soon'])
  t.equal(bad.code, 2)
  const d = await runCli(['policy', 'diff', PACK, config, '--at', '2026-12-01T00:00:00Z'])
  t.match(d.stdout, /schedule:\n\s+2027-01-15T00:00:00.000Z\s+change scheduled: Venezuela embargoed \(test\)/)
  const later = await runCli(['policy', 'diff', PACK, config, '--at', '2027-02-01T00:00:00Z'])
  t.match(later.stdout, /VE\s+restricted → embargoed/, 'as of a later time, the change itself')
  const broken = join(dir, 'broken.yaml')
  await writeFile(broken, scheduled.replace('embargoed: [CU, IR, KP, VE', 'nowhere: [CU, IR, KP, VE'))
  const no = await runCli(['check-config', '--config', broken])
  t.equal(no.code, 1)
  t.match(no.stderr, /\/schedule\/0 \(from 2027-01-15T00:00:00Z\)\/locations\/tiers\/nowhere: unknown tier "nowhere"/)
})
