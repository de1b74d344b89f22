import t from 'tap'
import { readdir, unlink, writeFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { verifyDir } from '../../src/audit/verify.js'
import { exportChunks, markExported } from '../../src/audit/export.js'
import { readRecords, type SegmentTally } from '../../src/audit/read.js'
import { entry, openWriter, signingKeyPem, tempDir } from '../helpers/audit.js'

const day = (d: number, i: number): string => new Date(Date.UTC(2026, 8, d, 10, 0, i)).toISOString()
const segs = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => /^w1_\d{8}_\d{12}\.jsonl$/.test(f)).sort()

async function exportMarked (dir: string, to?: string): Promise<void> {
  const tallies: SegmentTally[] = []
  for await (const _ of exportChunks(dir, { to }, 'jsonl', { hashSegments: true, onSegment: (x) => { tallies.push(x) } })) { /* to an archive */ }
  await markExported(dir, tallies)
}

t.test('segments past retention go only once verified and exported; verify tells that from tampering', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const pem = signingKeyPem()
  const w = await openWriter(dir, {}, pem)
  for (let i = 0; i < 30; i++) w.append(entry(i, { ts: day(1 + Math.floor(i / 10), i) })) // 1, 2 and 3 September
  await w.close()
  const w2 = await openWriter(dir, {}, pem)
  w2.append(entry(100, { ts: new Date().toISOString() }))
  await w2.close()
  t.same((await segs(dir)).map((f) => f.split('_')[1]), ['20260901', '20260902', '20260903', new Date().toISOString().slice(0, 10).replace(/-/g, '')])

  // Nothing exported yet: retention keeps everything.
  const w3 = await openWriter(dir, { retentionDays: 30 }, pem)
  await w3.close()
  t.equal((await segs(dir)).length, 4, 'not exported: kept')

  await exportMarked(dir, '2026-09-03')
  const manifest = (await readFile(join(dir, 'exported.jsonl'), 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { segment: string }).segment)
  t.same(manifest.map((f) => f.split('_')[1]), ['20260901', '20260902'], 'export marker: the two days exported in full')

  const w4 = await openWriter(dir, { retentionDays: 30 }, pem)
  await w4.close()
  const left = await segs(dir)
  t.same(left.map((f) => f.split('_')[1]).slice(0, 1), ['20260903'], 'exported and old: deleted; not exported: kept')
  t.equal(left.filter((f) => f.includes('_202609')).length, 1)
  const r = await verifyDir(dir)
  t.equal(r.ok, true, JSON.stringify(r.problem))
  const events: string[] = []
  for await (const { record } of readRecords(dir)) if (record.kind === 'system') events.push(`${record.event}:${String(record.detail.segment ?? '')}`)
  t.same(events.filter((e) => e.startsWith('retention-delete')).map((e) => e.split('_')[1]), ['20260901', '20260902'], 'each deletion is on the record')

  // The third day, deleted by hand (not by retention): verify fails.
  await unlink(join(dir, left[0] ?? ''))
  const bad = await verifyDir(dir)
  t.equal(bad.ok, false)
  t.match(bad.problem?.reason ?? '', /missing|starts at seq/)
})

t.test('a segment that no longer matches its digest is never deleted', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  for (let i = 0; i < 20; i++) w.append(entry(i, { ts: day(1 + Math.floor(i / 10), i) }))
  await w.close()
  const w2 = await openWriter(dir)
  w2.append(entry(100, { ts: new Date().toISOString() }))
  await w2.close()
  await exportMarked(dir)
  const [first = ''] = await segs(dir)
  const text = await readFile(join(dir, first), 'utf8')
  await writeFile(join(dir, first), text.replace('"org":"Org"', '"org":"Grr"'))
  const w3 = await openWriter(dir, { retentionDays: 30 })
  await w3.close()
  t.ok((await segs(dir)).includes(first), 'kept for the auditors to see')
})
