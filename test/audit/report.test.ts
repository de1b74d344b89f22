import t from 'tap'
import { buildReport, periodRange, reportCsv, reportHtml } from '../../src/audit/report.js'
import { csvCell } from '../../src/audit/export.js'
import { entry, openWriter, tempDir } from '../helpers/audit.js'

t.test('period ranges', async (t) => {
  t.same(periodRange('2026-11'), { from: '2026-11-01T00:00:00.000Z', to: '2026-12-01T00:00:00.000Z' })
  t.same(periodRange('2026-12'), { from: '2026-12-01T00:00:00.000Z', to: '2027-01-01T00:00:00.000Z' })
  t.same(periodRange('2026-02-28'), { from: '2026-02-28T00:00:00.000Z', to: '2026-03-01T00:00:00.000Z' })
  t.same(periodRange('2026'), { from: '2026-01-01T00:00:00.000Z', to: '2027-01-01T00:00:00.000Z' })
  t.throws(() => periodRange('2026-13'))
  t.throws(() => periodRange('2026-02-30'))
  t.throws(() => periodRange('nov'))
})

t.test('grouping, refusals by rule, tokens; the HTML escapes what it shows', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  const evil = '<img src=x onerror=alert(1)>'
  w.append(entry(0, { country: 'DE', model: evil, tokensIn: 10, tokensOut: 5, ts: '2026-11-03T10:00:00.000Z' }))
  w.append(entry(1, { country: 'DE', model: evil, tokensIn: 1, tokensOut: 2, ts: '2026-11-04T10:00:00.000Z' }))
  w.append(entry(2, { country: 'CU', model: 'm', decision: 'deny', rule: 'location:CU', status: 451, tokensIn: null, tokensOut: null, ts: '2026-11-04T11:00:00.000Z' }))
  w.append(entry(3, { country: 'CU', model: 'm', decision: 'deny', rule: 'location:CU', status: 451, tokensIn: null, tokensOut: null, ts: '2026-11-05T11:00:00.000Z' }))
  w.append(entry(4, { country: 'CU', model: 'm', ts: '2026-12-01T00:00:00.000Z' }))
  w.appendAdminChange({ ts: '2026-11-04T12:00:00.000Z', actor: 'a', role: 'admin', action: 'x', target: 'y', before: null, after: null })
  await w.close()
  const r = await buildReport(dir, '2026-11')
  t.equal(r.totals.interactions, 4, 'December and admin records are not counted')
  t.equal(r.totals.tokensIn, 11)
  t.equal(r.totals.tokensOut, 7)
  t.same(r.totals.refusalsByRule, { 'location:CU': 2 })
  const de = r.rows.find((x) => x.country === 'DE')
  t.equal(de?.interactions, 2)
  t.same(Object.keys(r.daily).sort(), ['2026-11-03', '2026-11-04', '2026-11-05'])
  const html = reportHtml(r, 'dir <marquee>')
  t.notMatch(html, /<img/)
  t.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/)
  t.notMatch(html, /<marquee>/)
  t.match(reportCsv(r), /location:CU=1/)
})

t.test('CSV cells: RFC 4180 quoting and no formulas', async (t) => {
  t.equal(csvCell('a,b'), '"a,b"')
  t.equal(csvCell('say "hi"'), '"say ""hi"""')
  t.equal(csvCell('=HYPERLINK("http://x")'), '"\'=HYPERLINK(""http://x"")"')
  t.equal(csvCell('+1'), "'+1")
  t.equal(csvCell('@sum'), "'@sum")
  t.equal(csvCell(-3), '-3', 'numbers are numbers')
  t.equal(csvCell(null), '')
  t.equal(csvCell(['vpn', 'tor']), 'vpn|tor')
})
