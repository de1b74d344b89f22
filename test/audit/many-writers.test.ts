import t from 'tap'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadSigner } from '../../src/audit/chain.js'
import { verifyDir } from '../../src/audit/verify.js'
import { openSql } from '../../src/audit/sql.js'
import { buildReport } from '../../src/audit/report.js'
import { generate } from '../bench/audit-generate.js'
import { signingKeyPem, tempDir } from '../helpers/audit.js'
import { runCli } from '../helpers/process.js'

// 20 writers (one per replica) over a month, as the year benchmark generates them, smaller.
const { dir, cleanup } = await tempDir()
t.teardown(cleanup)
const g = generate(dir, { records: 6000, writers: 20, start: Date.UTC(2026, 10, 1), spanMs: 30 * 86_400_000, signer: loadSigner(signingKeyPem()) })

t.test('the 20-writer directory verifies, with a line per writer', async (t) => {
  const r = await verifyDir(dir)
  t.equal(r.ok, true, JSON.stringify(r.problem))
  t.equal(r.chains, 20)
  t.equal(r.records, 6000)
  t.equal(r.signed, true)
  t.same(r.writers.map((w) => w.writer), g.writers)
  for (const w of r.writers) {
    t.equal(w.records, 300)
    t.equal(w.tail, 'sealed')
    t.match(w, { firstTs: /^2026-11-01T/, lastTs: /^2026-11-30T/, lastDigest: { final: true, signed: true, lastSeq: 300 } })
  }
  // The engine sees the same: records per writer, and the report's total.
  const s = await openSql(dir)
  t.teardown(() => { s.close() })
  const q = await s.select('SELECT writer, count(*) AS n, min(ts) AS first, max(ts) AS last FROM records GROUP BY writer ORDER BY writer')
  t.same(q.rows.map((x) => [x[0], Number(x[1]), x[2], x[3]]), r.writers.map((w) => [w.writer, w.records, w.firstTs, w.lastTs]))
  t.equal((await buildReport(dir, '2026-11')).totals.interactions, 6000)
})

t.test('a writer whose chain stops without a closing digest is named', async (t) => {
  // replica-07's last segment loses its last records and the digest that covered them.
  const victim = 'replica-07'
  const seg = (await readdir(dir)).filter((f) => f.startsWith(`${victim}_`)).sort().at(-1) ?? ''
  const lines = (await readFile(join(dir, seg), 'utf8')).split('\n').filter((l) => l !== '')
  await writeFile(join(dir, seg), lines.slice(0, -2).map((l) => l + '\n').join(''))
  const digest = (await readdir(join(dir, 'digests'))).filter((f) => f.startsWith(`${victim}_`)).sort().at(-1) ?? ''
  await rm(join(dir, 'digests', digest))
  const r = await verifyDir(dir)
  t.equal(r.ok, true, 'every chain is still intact as far as it goes')
  const flagged = r.writers.filter((w) => w.tail === 'uncovered').map((w) => w.writer)
  t.same(flagged, [victim], 'exactly that writer is flagged')
  t.match(r.warnings.join('\n'), new RegExp(`writer ${victim}: the chain stops at seq 298 .* without a closing digest`))
  const cli = await runCli(['audit', 'verify', dir])
  t.equal(cli.code, 0)
  t.match(cli.stdout, new RegExp(`${victim}\\s+298\\s.*UNCOVERED \\(no closing digest\\)`))
  const strict = await runCli(['audit', 'verify', dir, '--require-sealed'])
  t.equal(strict.code, 1)
  t.match(strict.stdout, `FAILED: writer(s) without a closing digest: ${victim}`)
})

t.test('verify over threads (the CLI) names the same first problem as one thread', async (t) => {
  // Two writers broken: the first in name order is the one named, however the chains are dealt to threads.
  for (const victim of ['replica-13', 'replica-04']) {
    const seg = (await readdir(dir)).filter((f) => f.startsWith(`${victim}_`)).sort()[3] ?? ''
    const text = await readFile(join(dir, seg), 'utf8')
    await writeFile(join(dir, seg), text.replace('"org":"Org ', '"org":"Orq '))
  }
  const single = await verifyDir(dir)
  t.equal(single.ok, false)
  t.equal(single.failedWriter, 'replica-04')
  const cli = await runCli(['audit', 'verify', dir, '--json'])
  t.equal(cli.code, 1)
  const threaded = JSON.parse(cli.stdout) as { problem: unknown, failedWriter: string }
  t.same(threaded.problem, single.problem)
  t.equal(threaded.failedWriter, 'replica-04')
})
