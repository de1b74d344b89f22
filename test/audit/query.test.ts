import t from 'tap'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { buildReport } from '../../src/audit/report.js'
import { openSql, withTimeout } from '../../src/audit/sql.js'
import { buildReportScan } from '../helpers/report-scan.js'
import { entry, openWriter, tempDir } from '../helpers/audit.js'
import { runCli } from '../helpers/process.js'
import type { AuditEntry } from '../../src/audit/types.js'

// Three writers over two months, with the awkward cases: unknown country/model/tiers, shadow refusals, unknown
// outcomes, records of two writers at the same instant, admin and system records that the report skips.
const { dir: root, cleanup } = await tempDir()
t.teardown(cleanup)
const dir = join(root, 'audit')
{
  const ws = await Promise.all(['a', 'b', 'c'].map(async (w) => await openWriter(dir, { writer: w, rotateBytes: 8192 })))
  for (let i = 0; i < 900; i++) {
    const w = ws[i % 3]
    if (w === undefined) continue
    const patch: Partial<AuditEntry> = {
      // pairs of records share a timestamp (across writers), so tie order matters
      ts: new Date(Date.UTC(2026, 9, 20) + Math.floor(i / 2) * 3 * 3_600_000).toISOString(),
      shadow: i % 11 === 0,
      outcome: i % 13 === 0 ? 'unknown' : i % 7 === 3 ? 'refused' : 'ok',
      keyTier: i % 17 === 0 ? null : i % 2 === 0 ? 'tier1' : 'tier2',
      model: i % 19 === 0 ? null : i % 3 === 0 ? 'frontier-1' : 'llama-3.1-8b',
      rule: i % 7 === 3 ? (i % 2 === 0 ? 'location:embargoed' : 'tier:tier2:model') : 'tier:tier1',
      crossBorder: i % 5 !== 0
    }
    w.append(entry(i, patch))
    if (i % 100 === 0) w.appendAdminChange({ ts: patch.ts ?? '', actor: 'ops', role: 'admin', action: 'tier.put', target: 'tier1', before: null, after: { a: 1 } })
  }
  for (const w of ws) await w.close()
}

t.test('the report on the SQL engine is the record-by-record scan, field for field and in order', async (t) => {
  for (const [period, filter] of [['2026-11', {}], ['2026-10', {}], ['2026', {}], ['2026-11-05', {}], ['2026-11', { country: 'DE' }], ['2026-11', { model: 'frontier-1', keyId: 'key-1' }], ['2025', {}]] as const) {
    const sql = await buildReport(dir, period, filter)
    const scan = await buildReportScan(dir, period, filter)
    t.equal(JSON.stringify({ ...sql, generatedAt: '' }), JSON.stringify({ ...scan, generatedAt: '' }), `${period} ${JSON.stringify(filter)}`)
  }
  const r = await buildReport(dir, '2026-11')
  t.ok(r.totals.interactions > 300 && r.rows.length > 5, 'the comparison is over a non-trivial report')
})

t.test('a query\'s counts equal the report\'s and a plain scan of the files', async (t) => {
  // Plain JS: every line of every segment, parsed, counted by country for November.
  const plain = new Map<string, number>()
  let tokensIn = 0
  for (const f of (await readdir(dir)).filter((x) => /_\d{8}_\d{12}\.jsonl$/.test(x))) {
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) {
      if (line === '') continue
      const r = JSON.parse(line) as { kind: string, ts: string, country: string | null, tokensIn: number | null }
      if (r.kind !== 'interaction' || !r.ts.startsWith('2026-11')) continue
      plain.set(r.country ?? 'unknown', (plain.get(r.country ?? 'unknown') ?? 0) + 1)
      tokensIn += r.tokensIn ?? 0
    }
  }
  const s = await openSql(dir)
  t.teardown(() => { s.close() })
  const q = await s.select("SELECT coalesce(country, 'unknown') AS c, count(*) AS n, sum(coalesce(tokensIn, 0)) AS tin FROM records WHERE kind = 'interaction' AND ts >= '2026-11-01' AND ts < '2026-12-01' GROUP BY ALL")
  const fromSql = new Map(q.rows.map((r) => [String(r[0]), Number(r[1])]))
  const report = await buildReport(dir, '2026-11')
  const fromReport = new Map<string, number>()
  for (const row of report.rows) fromReport.set(row.country, (fromReport.get(row.country) ?? 0) + row.interactions)
  t.same(fromSql, plain, 'SQL = plain scan')
  t.same(fromReport, plain, 'report = plain scan')
  t.equal(q.rows.reduce((n, r) => n + Number(r[2]), 0), tokensIn)
  t.equal(report.totals.tokensIn, tokensIn)
})

t.test('queries only read: one SELECT, no other files, nothing written', async (t) => {
  const before = (await readdir(dir)).sort()
  const s = await openSql(dir)
  t.teardown(() => { s.close() })
  await t.rejects(s.select('SELECT 1; SELECT 2'), /one SELECT statement, found 2/)
  await t.rejects(s.select("COPY (SELECT * FROM records) TO '" + join(dir, 'x.csv') + "'"))
  await t.rejects(s.select('CREATE TABLE t AS SELECT 1'))
  await t.rejects(s.select("SELECT * FROM read_csv('/etc/passwd')"), /disabled by configuration/)
  await t.rejects(s.select('SET enable_external_access = true'))
  await t.rejects(s.internal('SET enable_external_access = true'), /locked/)
  t.same((await readdir(dir)).sort(), before, 'the audit directory is unchanged')
  const q = await s.select("WITH x AS (SELECT writer, count(*) n FROM records GROUP BY writer) SELECT * FROM x ORDER BY writer")
  t.same(q.rows.map((r) => r[0]), ['a', 'b', 'c'])
})

t.test('a long query is interrupted at its deadline', async (t) => {
  const s = await openSql(dir)
  t.teardown(() => { s.close() })
  await t.rejects(withTimeout(s, 50, async () => await s.select('SELECT count(*) FROM range(100000000000) a')), /interrupted after 50 ms/)
  t.same((await s.select('SELECT 1 AS one')).rows, [[1]], 'the session still answers after an interrupt')
})

t.test('geogate audit query and export --format parquet (built CLI)', async (t) => {
  const q = await runCli(['audit', 'query', dir, "SELECT writer, count(*) AS n FROM records GROUP BY writer ORDER BY writer", '--format', 'jsonl'])
  t.equal(q.code, 0, q.stderr)
  t.same(q.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown), [{ writer: 'a', n: '303' }, { writer: 'b', n: '303' }, { writer: 'c', n: '303' }], 'jsonl rows (BIGINT as text): 300 interactions and 3 admin changes each')
  const csv = await runCli(['audit', 'query', dir, "SELECT country, count(*) n FROM records WHERE country = 'DE' GROUP BY country", '--format', 'csv'])
  t.match(csv.stdout, /^country,n\r\nDE,\d+\r\n$/)
  const tbl = await runCli(['audit', 'query', dir, 'SELECT 1 AS one'])
  t.match(tbl.stdout, /one\n---\n1\n\(1 row\)/)
  const bad = await runCli(['audit', 'query', dir, 'DELETE FROM records'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /query: /)
  const out = join(root, 'nov.parquet')
  const ex = await runCli(['audit', 'export', '--dir', dir, '--from', '2026-11-01', '--to', '2026-12-01', '--format', 'parquet', '--out', out])
  t.equal(ex.code, 0, ex.stderr)
  t.ok((await stat(out)).size > 1000)
  const back = await runCli(['audit', 'query', dir, `SELECT count(*) AS n FROM records WHERE ts >= '2026-11-01' AND ts < '2026-12-01'`, '--format', 'jsonl'])
  // The Parquet file holds the same records: read back with DuckDB itself (outside the locked session).
  const { DuckDBInstance } = await import('@duckdb/node-api')
  const db = await DuckDBInstance.create(':memory:')
  const c = await db.connect()
  const n = (await c.runAndReadAll(`SELECT count(*)::INTEGER, count(DISTINCT hash)::INTEGER FROM read_parquet('${out}')`)).getRowsJson()
  c.closeSync()
  db.closeSync()
  t.same(n, [[Number((JSON.parse(back.stdout) as { n: string }).n), Number((JSON.parse(back.stdout) as { n: string }).n)]])
})
