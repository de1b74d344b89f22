import t from 'tap'
import { cp, readFile, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { DigestChain } from '../../src/audit/digests.js'
import { SegmentWriter } from '../../src/audit/segment-writer.js'
import { readRecords } from '../../src/audit/read.js'
import { entry, openWriter, tempDir } from '../helpers/audit.js'

/*
 * The writer's two commit loops (journal lines, final records) side by side: the interleavings they allow. A slow
 * or stalled disk is made by holding one of the writer's own steps (the final digest of a rotated segment, a
 * segment write) for a while: the moment matters, and no real filesystem can be made slow at exactly that step.
 */

const stamp = (i: number): ReturnType<typeof entry> => entry(i, { ts: new Date().toISOString() })

async function until (what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

t.test('a compaction while a batch is rotating keeps what recovery needs: no record twice after a crash', async (t) => {
  const orig = DigestChain.prototype.write
  let slow = false
  DigestChain.prototype.write = async function (this: DigestChain, ...args: Parameters<typeof orig>) {
    if (args[1] === true && slow) await new Promise((resolve) => setTimeout(resolve, 500))
    return await orig.apply(this, args)
  }
  t.teardown(() => { DigestChain.prototype.write = orig })
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { rotateBytes: 4096, journalCompactBytes: 1, fsyncIntervalMs: 5 })
  const a = Array.from({ length: 8 }, (_, i) => stamp(i))
  t.ok((await Promise.all(a.map(async (e) => await w.begin(e)))).every((r) => r.durable))
  slow = true
  for (const e of a) w.append(e)
  // the records loop has made the first segment's part durable and waits for the rotated segment's digest
  await until('a part of the batch durable', () => w.stats().durable > 0)
  t.ok(w.stats().inFlight > 0, 'some records durable, their begins not closed yet')
  // meanwhile traffic: ended begins make the journal's obsolete bytes pass the open ones': a compaction is due
  const b = Array.from({ length: 40 }, (_, i) => stamp(100 + i))
  await Promise.all(b.map(async (e) => await w.begin(e)))
  for (const e of b) w.end(e.requestId)
  await w.begin(stamp(999))
  const journal = join(dir, 'w1.inflight.jsonl')
  await until('the compaction (the ended begins gone from the journal)', async () => !(await readFile(journal, 'utf8')).includes('"req-100"'))
  // a crash now: what is on disk, recovered by a new writer
  const { dir: crashed, cleanup: c2 } = await tempDir()
  t.teardown(c2)
  await cp(dir, crashed, { recursive: true })
  slow = false
  const w2 = await openWriter(crashed, { rotateBytes: 4096 })
  await w2.close()
  const byId = new Map<string, string[]>()
  for await (const { record } of readRecords(crashed)) {
    if (record.kind === 'interaction') byId.set(record.requestId, [...(byId.get(record.requestId) ?? []), `${record.outcome}@${record.seq}`])
  }
  t.same([...byId].filter(([, v]) => v.length > 1), [], 'no request has two records')
  t.ok(a.every((e) => byId.has(e.requestId)) && byId.has('req-999'), 'and every begun one has one')
  await w.close()
})

t.test('close() with a compaction due after its flush: nothing runs beside it, no error, no file left open', async (t) => {
  async function fdsUnder (dir: string): Promise<number> {
    let n = 0
    for (const fd of await readdir('/proc/self/fd')) {
      try { if ((await readlink(`/proc/self/fd/${fd}`)).startsWith(dir)) n++ } catch { /* closed meanwhile */ }
    }
    return n
  }
  const errors: string[] = []
  let open = 0
  for (let round = 0; round < 20; round++) {
    const { dir, cleanup } = await tempDir()
    const w = await openWriter(dir, { journalCompactBytes: 4096, fsyncIntervalMs: 1000 })
    const a = Array.from({ length: 20 }, (_, i) => stamp(i))
    await Promise.all(a.map(async (e) => await w.begin(e)))
    for (const e of a) w.append(e)
    await w.close().catch((err: Error) => { errors.push(err.message) })
    await new Promise((resolve) => setTimeout(resolve, 20))
    open += await fdsUnder(dir)
    await cleanup()
  }
  t.same(errors, [], 'every close() succeeded')
  t.equal(open, 0, 'no file of the writer left open')
})

for (const maxHeldRecords of [10, 1]) t.test(`records dropped while a segment write stalls (maxHeldRecords ${maxHeldRecords}): the chain says how many, all of them`, async (t) => {
  const orig = SegmentWriter.prototype.write
  let release: (() => void) | null = null
  let stall = false
  SegmentWriter.prototype.write = async function (this: SegmentWriter, ...args: Parameters<typeof orig>) {
    if (stall) await new Promise<void>((resolve) => { release = resolve })
    return await orig.apply(this, args)
  }
  t.teardown(() => { SegmentWriter.prototype.write = orig })
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { maxHeldRecords, maxBacklog: 1000, fsyncIntervalMs: 1 })
  stall = true
  for (let i = 0; i < 5; i++) w.append(entry(i))
  await until('the records loop in its (stalled) write', () => release !== null)
  for (let i = 5; i < 30; i++) w.append(entry(i))
  t.ok(w.stats().dropped > 0, `${w.stats().dropped} dropped past maxHeldRecords`)
  // a request meanwhile: its journal write succeeds while the segment write still hangs
  t.same(await w.begin(entry(100)), { durable: true })
  w.append(entry(100))
  stall = false
  const r = release as (() => void) | null
  r?.()
  await w.close()
  const reports: number[] = []
  for await (const { record } of readRecords(dir)) if (record.kind === 'system' && record.event === 'records-dropped') reports.push(Number((record.detail as { count: number }).count))
  t.same(reports, [w.stats().dropped], 'one records-dropped record, with the whole count')
})
