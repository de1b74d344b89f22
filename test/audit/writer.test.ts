import t from 'tap'
import { appendFile, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { verifyDir } from '../../src/audit/verify.js'
import { readRecords } from '../../src/audit/read.js'
import type { AuditRecord } from '../../src/audit/types.js'
import { entry, openWriter, signingKeyPem, tempDir } from '../helpers/audit.js'

async function all (dir: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = []
  for await (const r of readRecords(dir)) out.push(r.record)
  return out
}

async function segmentFiles (dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => /^w1_\d{8}_\d{12}\.jsonl$/.test(f)).sort()
}

t.test('every append becomes exactly one durable record, in order, with a continuous chain', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  for (let i = 0; i < 500; i++) w.append(entry(i))
  t.equal(w.stats().queueDepth, 500, 'append only queues')
  await w.flush()
  t.equal(w.stats().queueDepth, 0)
  t.equal(w.stats().durable, 500)
  await w.close()
  const recs = await all(dir)
  t.same(recs.map((r) => r.kind === 'interaction' ? r.requestId : null), Array.from({ length: 500 }, (_, i) => `req-${i}`))
  t.same(recs.map((r) => r.seq), Array.from({ length: 500 }, (_, i) => i + 1))
  t.equal((await verifyDir(dir)).ok, true)
})

t.test('segments rotate by size and by UTC day; a digest seals each', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { rotateBytes: 4096 }, signingKeyPem())
  const day = 86_400_000
  for (let i = 0; i < 30; i++) w.append(entry(i, { ts: new Date(Date.UTC(2026, 10, 1) + Math.floor(i / 10) * day + i).toISOString() }))
  await w.close()
  const files = await segmentFiles(dir)
  t.same([...new Set(files.map((f) => f.split('_')[1]))], ['20261101', '20261102', '20261103'], 'one day per segment')
  t.ok(files.length > 3, 'and more than one segment a day when they outgrow rotateBytes')
  for (const f of files) t.ok((await readFile(join(dir, f))).length <= 4096, `${f} within rotateBytes`)
  const r = await verifyDir(dir)
  t.equal(r.ok, true)
  t.equal(r.digests, files.length)
  t.equal(r.signedDigests, files.length)
})

t.test('a restart continues the chain in a new segment', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w1 = await openWriter(dir)
  for (let i = 0; i < 5; i++) w1.append(entry(i))
  await w1.close()
  const w2 = await openWriter(dir)
  for (let i = 5; i < 10; i++) w2.append(entry(i))
  await w2.close()
  t.equal((await segmentFiles(dir)).length, 2)
  t.same((await all(dir)).map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  t.equal((await verifyDir(dir)).ok, true)
})

t.test('a torn last line is moved aside, recorded, and the chain continues', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w1 = await openWriter(dir)
  for (let i = 0; i < 5; i++) w1.append(entry(i))
  await w1.flush()
  // The process dies mid-write: half a line at the end, no final digest, no clean close.
  const [file = ''] = await segmentFiles(dir)
  await appendFile(join(dir, file), '{"kind":"interaction","ts":"2026-11-01T00:')
  t.equal((await verifyDir(dir)).ok, false, 'the torn line fails verify before recovery')
  const w2 = await openWriter(dir)
  w2.append(entry(5))
  await w2.close()
  const torn = await readdir(join(dir, 'torn'))
  t.equal(torn.length, 1)
  t.equal(await readFile(join(dir, 'torn', torn[0] ?? ''), 'utf8'), '{"kind":"interaction","ts":"2026-11-01T00:')
  const recs = await all(dir)
  const sys = recs.filter((r) => r.kind === 'system')
  t.same(sys.map((r) => r.kind === 'system' ? r.event : ''), ['torn-tail', 'recovered'])
  t.equal(recs.filter((r) => r.kind === 'interaction').length, 6)
  t.equal((await verifyDir(dir)).ok, true)
})

t.test('interactions begun and never finished get a record with outcome unknown on the next start', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w1 = await openWriter(dir)
  for (let i = 0; i < 6; i++) w1.begin(entry(i, { status: null }))
  for (let i = 0; i < 3; i++) w1.append(entry(i))
  await w1.flush()
  // crash: w1 is never closed
  const w2 = await openWriter(dir)
  await w2.close()
  const recs = (await all(dir)).filter((r) => r.kind === 'interaction')
  t.same(recs.map((r) => r.kind === 'interaction' ? [r.requestId, r.outcome] : null), [
    ['req-0', 'ok'], ['req-1', 'ok'], ['req-2', 'ok'], ['req-3', 'unknown'], ['req-4', 'unknown'], ['req-5', 'unknown']
  ])
  const unknown = recs[3]
  t.equal(unknown?.kind === 'interaction' ? unknown.status : 'x', null)
  t.equal((await verifyDir(dir)).ok, true)
  // A third start finds nothing left to recover.
  const w3 = await openWriter(dir)
  await w3.close()
  t.equal((await all(dir)).filter((r) => r.kind === 'interaction').length, 6)
})

t.test('close() records interactions still open as unknown and never loses queued records', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { fsyncIntervalMs: 60_000 })
  w.begin(entry(0, { status: null }))
  w.begin(entry(1, { status: null }))
  w.append(entry(1))
  for (let i = 2; i < 100; i++) w.append(entry(i))
  await w.close(20)
  const recs = (await all(dir)).filter((r) => r.kind === 'interaction')
  t.equal(recs.length, 100)
  t.same(recs.filter((r) => r.kind === 'interaction' && r.outcome === 'unknown').map((r) => r.kind === 'interaction' ? r.requestId : ''), ['req-0'])
  w.append(entry(500))
  t.equal((await all(dir)).length, 100, 'nothing is written after close')
})

t.test('end() drops a begin, so no unknown record appears for an out-of-scope interaction', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w1 = await openWriter(dir, { journalCompactBytes: 1 })
  w1.begin(entry(0, { status: null }))
  await w1.flush()
  w1.end('req-0')
  w1.append(entry(1))
  await w1.flush()
  const w2 = await openWriter(dir)
  await w2.close()
  t.same((await all(dir)).filter((r) => r.kind === 'interaction').map((r) => r.kind === 'interaction' ? r.requestId : ''), ['req-1'])
})

t.test('the in-flight journal is compacted to what is still open', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { journalCompactBytes: 2048 })
  for (let i = 0; i < 50; i++) { w.begin(entry(i, { status: null })); w.append(entry(i)) }
  w.begin(entry(99, { status: null }))
  await w.flush()
  w.append(entry(98))
  await w.flush()
  const journal = (await readFile(join(dir, 'w1.inflight.jsonl'), 'utf8')).split('\n').filter((l) => l !== '')
  t.ok(journal.length < 10, `compacted (${journal.length} lines)`)
  t.match(journal.join('\n'), /req-99/)
  await w.close()
})

t.test('a damaged last record stops the writer from starting rather than forking the chain', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  w.append(entry(0))
  await w.close()
  const [file = ''] = await segmentFiles(dir)
  const text = await readFile(join(dir, file), 'utf8')
  await writeFile(join(dir, file), text.replace('"org":"Org"', '"org":"Grr"'))
  await t.rejects(openWriter(dir), /damaged/)
})

t.test('periodic digests cover the open segment: records cut from its tail after a crash are detected', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { digestIntervalMs: 20 }, signingKeyPem())
  for (let i = 0; i < 10; i++) w.append(entry(i))
  await w.flush()
  const digests = async (): Promise<string[]> => (await readdir(join(dir, 'digests'))).filter((f) => f.endsWith('.json'))
  while ((await digests()).length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  const [file = ''] = await segmentFiles(dir)
  const d = JSON.parse(await readFile(join(dir, 'digests', (await digests())[0] ?? ''), 'utf8')) as { segment: string, final: boolean, lastSeq: number }
  t.equal(d.segment, file)
  t.equal(d.final, false, 'a digest of the open segment')
  t.equal(d.lastSeq, 10)
  t.equal((await verifyDir(dir, { live: true })).ok, true)
  // The process dies (w is abandoned) and someone removes the last two records.
  const lines = (await readFile(join(dir, file), 'utf8')).split('\n')
  await writeFile(join(dir, file), lines.slice(0, 8).join('\n') + '\n')
  const r = await verifyDir(dir)
  t.equal(r.ok, false)
  t.match(r.problem?.reason ?? '', /shorter .* records deleted/)
})
