import t from 'tap'
import { runCli, type CliResult } from '../helpers/process.js'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { entry, openWriter, signingKeyPem, tempDir } from '../helpers/audit.js'
import { readExported } from '../../src/audit/export.js'

const run = async (args: string[]): Promise<CliResult> => await runCli(args)

const { dir: root, cleanup } = await tempDir()
t.teardown(cleanup)
const dir = join(root, 'audit')
{
  // Two replicas' chains, interleaved in time, over three days.
  const key = signingKeyPem()
  const w1 = await openWriter(dir, { rotateBytes: 16384 }, key)
  const w2 = await openWriter(dir, { rotateBytes: 16384, writer: 'w2' }, key)
  for (let i = 0; i < 200; i++) (i % 2 === 0 ? w1 : w2).append(entry(i, { ts: new Date(Date.UTC(2026, 10, 1) + i * 20 * 60_000).toISOString() }))
  await w1.close()
  await w2.close()
}

t.test('audit verify: 0 when intact, 1 naming file, line and seq when not', async (t) => {
  const ok = await run(['audit', 'verify', dir])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, /^ok: 2 chain\(s\), \d+ segment\(s\), 200 record\(s\)/)
  const files = (await import('node:fs/promises')).readdir
  const seg = (await files(dir)).filter((f) => f.endsWith('.jsonl') && f.startsWith('w1_')).sort()[1] ?? ''
  const path = join(dir, seg)
  const text = await readFile(path, 'utf8')
  const lines = text.split('\n')
  const seq = (JSON.parse(lines[3] ?? '') as { seq: number }).seq
  lines[3] = (lines[3] ?? '').replace('"org":"Org"', '"org":"Orq"')
  await writeFile(path, lines.join('\n'))
  const bad = await run(['audit', 'verify', dir])
  t.equal(bad.code, 1)
  t.match(bad.stdout, `FAILED: ${seg}:4 seq ${seq}: hash does not match`)
  await writeFile(path, text)
  t.equal((await run(['audit', 'verify', dir])).code, 0)
})

t.test('audit export: JSONL and CSV in time order, filters, progress on stderr', async (t) => {
  const all = await run(['audit', 'export', '--dir', dir])
  t.equal(all.code, 0)
  const recs = all.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ts: string, country: string | null, decision: string })
  t.equal(recs.length, 200)
  t.same(recs.map((r) => r.ts), [...recs.map((r) => r.ts)].sort(), 'time order')
  t.match(all.stderr, /export: 200 record\(s\)/)
  const cu = await run(['audit', 'export', '--dir', dir, '--country', 'cu', '--decision', 'allow', '--format', 'csv'])
  const rows = cu.stdout.trim().split('\r\n')
  t.match(rows[0], /^kind,ts,requestId/)
  t.equal(rows.length - 1, recs.filter((r) => r.country === 'CU' && r.decision === 'allow').length)
  const day = await run(['audit', 'export', '--dir', dir, '--from', '2026-11-02', '--to', '2026-11-03'])
  t.equal(day.stdout.trim().split('\n').length, recs.filter((r) => r.ts.startsWith('2026-11-02')).length)
  t.equal((await run(['audit', 'export', '--dir', dir, '--format', 'xml'])).code, 2)
  t.equal((await run(['audit', 'export', '--dir', dir, '--model', 'x', '--mark-exported'])).code, 2, 'only whole segments can be marked')
})

t.test('audit export --mark-exported notes the closed segments exported in full', async (t) => {
  const r = await run(['audit', 'export', '--dir', dir, '--mark-exported'])
  t.equal(r.code, 0)
  const marked = await readExported(dir)
  const segs = (await (await import('node:fs/promises')).readdir(dir)).filter((f) => /^w[12]_.*\.jsonl$/.test(f))
  t.same([...marked.keys()].sort(), segs.sort())
})

t.test('report: JSON, CSV and a self-contained HTML page', async (t) => {
  const json = await run(['report', '--dir', dir, '--period', '2026-11'])
  t.equal(json.code, 0, json.stderr)
  const rep = JSON.parse(json.stdout) as { totals: { interactions: number, denied: number, tokensIn: number, refusalsByRule: Record<string, number> }, rows: Array<{ country: string, model: string, tier: string }> }
  t.equal(rep.totals.interactions, 200)
  t.equal(rep.totals.denied, rep.totals.refusalsByRule['location:embargoed'])
  t.ok(rep.totals.tokensIn > 0)
  t.ok(rep.rows.some((r) => r.country === 'unknown'), 'unknown locations have their row')
  const oct = await run(['report', '--dir', dir, '--period', '2026-10'])
  t.equal((JSON.parse(oct.stdout) as { totals: { interactions: number } }).totals.interactions, 0)
  const day = await run(['report', '--dir', dir, '--period', '2026-11-02', '--format', 'csv'])
  t.match(day.stdout, /^period,country,locationTier,model,tier,interactions,allowed,denied/)
  const html = await run(['report', '--dir', dir, '--period', '2026-11', '--format', 'html'])
  t.match(html.stdout, /^<!doctype html>/)
  t.match(html.stdout, /<svg/)
  t.notMatch(html.stdout, /<script|src="http|href="http|url\(/)
  t.equal((await run(['report', '--dir', dir, '--period', 'november'])).code, 2)
})

t.test('--config takes the directory from audit.dir', async (t) => {
  const { baseConfig } = await import('../helpers/gateway.js')
  const file = join(root, 'geogate.json')
  await writeFile(file, JSON.stringify(baseConfig('http://127.0.0.1:9', { audit: { dir } })))
  const v = await run(['audit', 'verify', '--config', file])
  t.equal(v.code, 0, v.stderr)
  t.match(v.stdout, /200 record\(s\)/)
  const r = await run(['report', '--config', file, '--period', '2026-11'])
  t.equal((JSON.parse(r.stdout) as { totals: { interactions: number } }).totals.interactions, 200)
  t.equal((await run(['audit', 'verify'])).code, 2, 'no directory, no config: usage')
})
