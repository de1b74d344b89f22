/* The CSV export carries every field of every record kind: objects as JSON in a cell. */
import t from 'tap'
import { CSV_COLUMNS, csvRow, exportChunks } from '../../src/audit/export.js'
import { readRecords } from '../../src/audit/read.js'
import { entry, openWriter, tempDir } from '../helpers/audit.js'

/** Minimal RFC 4180 parser for one line (quotes doubled inside quoted cells). */
function cells (line: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++ } else if (c === '"') quoted = false
      else cur += c
    } else if (c === '"') quoted = true
    else if (c === ',') { out.push(cur); cur = '' } else cur += c
  }
  out.push(cur)
  return out
}

t.test('every field of interaction, admin and system records has a column; before/after are JSON', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  w.append(entry(0, { tokensEstimated: true, location: 'geo' }))
  w.appendAdminChange({ ts: '2026-11-01T00:10:00.000Z', actor: 'ops', role: 'admin', action: 'tier.patch', target: 'tier2', before: { limits: { requestsPerMinute: 60 } }, after: { limits: { requestsPerMinute: 30 } } })
  await w.close()
  const columns = new Set<string>(CSV_COLUMNS)
  const kinds = new Set<string>()
  for await (const { record } of readRecords(dir)) {
    kinds.add(record.kind)
    for (const k of Object.keys(record)) t.ok(columns.has(k), `${record.kind}.${k} has a CSV column`)
    const row = cells(csvRow(record).replace(/\r\n$/, ''))
    t.equal(row.length, CSV_COLUMNS.length)
    const cell = (name: string): string => row[CSV_COLUMNS.indexOf(name as typeof CSV_COLUMNS[number])] ?? ''
    if (record.kind === 'admin') {
      t.same(JSON.parse(cell('before')), { limits: { requestsPerMinute: 60 } }, 'before, as JSON')
      t.same(JSON.parse(cell('after')), { limits: { requestsPerMinute: 30 } }, 'after, as JSON')
    }
    if (record.kind === 'interaction') {
      t.equal(cell('tokensEstimated'), 'true')
      t.equal(cell('location'), 'geo')
    }
  }
  t.ok(kinds.has('interaction') && kinds.has('admin'))
  // a system record's detail object, as JSON too
  const sys = { kind: 'system', ts: '2026-11-01T00:00:00.000Z', event: 'recovered', detail: { records: 3 }, writer: 'w1', seq: 9, prev: 'x', hash: 'y' } as const
  for (const k of Object.keys(sys)) t.ok(columns.has(k), `system.${k} has a CSV column`)
  t.same(JSON.parse(cells(csvRow(sys).replace(/\r\n$/, ''))[CSV_COLUMNS.indexOf('detail')] ?? ''), { records: 3 })
  let text = ''
  for await (const chunk of exportChunks(dir, {}, 'csv')) text += chunk
  t.equal(text.split('\r\n')[0], CSV_COLUMNS.join(','), 'the header names every column')
})
