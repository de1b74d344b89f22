import t from 'tap'
import { readFile, readdir, rm, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { entry, openWriter, tempDir } from '../helpers/audit.js'
import { fill, mountSkip, tmpfs } from '../helpers/mounts.js'
import { readRecords } from '../../src/audit/read.js'
import { verifyDir } from '../../src/audit/verify.js'
import type { InteractionRecord, SystemRecord } from '../../src/audit/types.js'

/*
 * The writer's write-ahead contract: begin() resolves only once the journal line is on disk; concurrent begins
 * share fdatasyncs; a final record made durable makes its journal line obsolete (a crash before the journal is
 * cleaned up writes no second record); the in-memory backlog is bounded, and what it drops is counted and said.
 */

async function records (dir: string): Promise<{ inter: InteractionRecord[], system: SystemRecord[] }> {
  const inter: InteractionRecord[] = []
  const system: SystemRecord[] = []
  for await (const { record } of readRecords(dir)) {
    if (record.kind === 'interaction') inter.push(record)
    if (record.kind === 'system') system.push(record)
  }
  return { inter, system }
}

t.test('begin() resolves once its journal line is on disk; concurrent begins share fdatasyncs', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  // A long window for final records: only the journal's own urgency commits here.
  const w = await openWriter(dir, { fsyncIntervalMs: 60_000 })
  const r = await w.begin(entry(0, { status: null }))
  t.same(r, { durable: true })
  t.match(await readFile(join(dir, 'w1.inflight.jsonl'), 'utf8'), /"requestId":"req-0"/, 'the line is in the file when begin() resolves')

  const before = w.stats().journalCommits
  const all = await Promise.all(Array.from({ length: 200 }, async (_, i) => await w.begin(entry(i + 1, { status: null }))))
  t.ok(all.every((x) => x.durable))
  const syncs = w.stats().journalCommits - before
  t.ok(syncs <= 10, `200 concurrent begins made durable in ${syncs} fdatasync(s)`)
  for (let i = 0; i <= 200; i++) w.append(entry(i))
  await w.close()
  t.equal((await records(dir)).inter.length, 201)
})

t.test('a crash after the final record is durable and before the journal is cleaned up writes no second record', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w1 = await openWriter(dir)
  for (let i = 0; i < 5; i++) await w1.begin(entry(i, { status: null }))
  for (let i = 0; i < 3; i++) w1.append(entry(i))
  await w1.flush()
  // The journal still holds all five begins (no compaction yet): this is the state a SIGKILL now leaves.
  t.equal((await readFile(join(dir, 'w1.inflight.jsonl'), 'utf8')).split('\n').filter((l) => l.includes('"b"')).length, 5)
  const w2 = await openWriter(dir)
  await w2.close()
  const { inter } = await records(dir)
  const ids = inter.map((r) => r.requestId).sort()
  t.same(ids, ['req-0', 'req-1', 'req-2', 'req-3', 'req-4'], 'one record each')
  t.same(inter.filter((r) => r.outcome === 'unknown').map((r) => r.requestId).sort(), ['req-3', 'req-4'], 'unknown only for the two never finished')
  t.equal((await verifyDir(dir)).ok, true)
  void w1 // left open on purpose: a crashed process never closes
})

t.test('withdraw(): a begin refused before it was durable leaves no journal entry behind', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  const p = w.begin(entry(7, { status: null }))
  w.withdraw('req-7') // same turn: the line has not been written yet
  w.append(entry(7, { status: 503, decision: 'deny', rule: 'audit:unavailable', outcome: 'refused' }))
  await p.catch(() => null)
  await w.flush()
  t.notMatch(await readFile(join(dir, 'w1.inflight.jsonl'), 'utf8'), /req-7/, 'the withdrawn line was never written')
  const w2 = await openWriter(dir)
  await w2.close()
  t.same((await records(dir)).inter.map((r) => [r.requestId, r.outcome]), [['req-7', 'refused']])
})

t.test('while the disk is full: begin() answers not durable within journalTimeoutMs, at once past maxBacklog; the backlog is bounded by maxHeldRecords, and what it dropped is on the record once space returns', { skip: mountSkip() }, async (t) => {
  const m = await tmpfs(t, '256k')
  const w = await openWriter(join(m.dir, 'a'), { journalTimeoutMs: 200, maxBacklog: 30, maxHeldRecords: 60 })
  for (let i = 0; i < 5; i++) w.append(entry(i))
  await w.flush()
  const filler = await fill(m.dir)
  void filler
  // The journal file's last page may still take a line or two; the next ones find no room.
  let r = await w.begin(entry(100, { status: null }))
  let waited = 0
  if (!r.durable) w.withdraw('req-100')
  for (let i = 101; r.durable && i < 120; i++) {
    const t0 = Date.now()
    r = await w.begin(entry(i, { status: null }))
    waited = Date.now() - t0
    if (!r.durable) w.withdraw(`req-${i}`)
  }
  t.equal(r.durable, false)
  t.match(r, { reason: /ENOSPC/ })
  t.ok(waited >= 150 && waited < 1500, `not durable after ${waited} ms (journalTimeoutMs 200)`)
  for (let i = 5; i < 50; i++) w.append(entry(i, { ts: new Date().toISOString() }))
  t.ok(w.stats().queueDepth >= 45, `queue depth ${w.stats().queueDepth} counts the records being retried`)
  t.equal(w.stats().failing, true)
  t.match(w.health(), { ok: false, reasons: [/^audit: ENOSPC writing /] })
  const t1 = Date.now()
  const fast = await w.begin(entry(130, { status: null }))
  t.equal(fast.durable, false)
  t.ok(Date.now() - t1 < 100, 'past maxBacklog: at once')
  w.withdraw('req-130')
  for (let i = 50; i < 100; i++) w.append(entry(i, { ts: new Date().toISOString() }))
  t.ok(w.stats().dropped > 0, `${w.stats().dropped} dropped past maxHeldRecords (60)`)
  t.ok(w.stats().queueDepth <= 60, 'the backlog stays bounded')
  await t.rejects(w.flush(), /not written \(ENOSPC\)/, 'flush() says what failed')

  m.remount('size=4m')
  await w.flush()
  t.equal(w.health().ok, true)
  const dropped = w.stats().dropped
  await w.close()
  const { inter, system } = await records(join(m.dir, 'a'))
  t.equal(inter.filter((r) => r.outcome !== 'unknown').length, 100 - dropped, 'every record not dropped was written, in order')
  t.same(inter.map((r) => r.seq), [...inter.map((r) => r.seq)].sort((a, b) => a - b))
  t.ok(system.some((s) => s.event === 'write-failure' && s.detail.code === 'ENOSPC'), 'the failure is on the record')
  t.ok(system.some((s) => s.event === 'records-dropped' && s.detail.count === dropped), 'and how many records were dropped')
  t.equal((await verifyDir(join(m.dir, 'a'))).ok, true, 'the chain verifies')
})

t.test('a repaired filesystem that lost the newest durable records: they are written again from memory, the chain holds', { skip: mountSkip() }, async (t) => {
  const m = await tmpfs(t, '256k')
  const dir = join(m.dir, 'a')
  const w = await openWriter(dir, { journalTimeoutMs: 200 })
  for (let i = 0; i < 6; i++) w.append(entry(i, { ts: new Date().toISOString() }))
  await w.flush()
  const seg = (await readdir(dir)).find((f) => f.endsWith('.jsonl') && !f.includes('inflight')) ?? ''
  const text = await readFile(join(dir, seg), 'utf8')
  void text
  const filler = await fill(m.dir)
  // The segment's last page may take a record or two more; append until a commit fails.
  let n = 6
  let failed = false
  while (!failed && n < 40) {
    w.append(entry(n++, { ts: new Date().toISOString() }))
    failed = await w.flush().then(() => false, (err: Error) => /ENOSPC/.test(err.message))
  }
  t.ok(failed, 'a commit failed with ENOSPC')
  // What ext4 can do on the error that turns it read-only: the last two acknowledged records are gone after the repair.
  const lines = (await readFile(join(dir, seg), 'utf8')).split('\n').filter((l) => l !== '')
  await truncate(join(dir, seg), Buffer.byteLength(lines.slice(0, -2).join('\n') + '\n'))
  await rm(filler)
  await w.flush()
  await w.close()
  const { inter, system } = await records(dir)
  t.same(inter.map((r) => r.requestId), Array.from({ length: n }, (_, i) => `req-${i}`), 'nothing lost, nothing twice, in order')
  t.ok(system.some((s) => s.event === 'rewritten' && s.detail.records === 2), 'the rewrite is on the record')
  t.equal((await verifyDir(dir)).ok, true, 'the chain verifies')
})
