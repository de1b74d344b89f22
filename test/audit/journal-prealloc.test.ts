import t, { type Test } from 'tap'
import { cp, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Journal, PREALLOC_BYTES } from '../../src/audit/journal.js'
import { readRecords } from '../../src/audit/read.js'
import { verifyDir } from '../../src/audit/verify.js'
import { entry, openWriter, tempDir } from '../helpers/audit.js'

/*
 * The preallocated journal (journal.ts): lines are written over zeros a compaction (or an extension) put there,
 * at their offset, so a commit does not grow the file; a reader skips the zeros. What a crash leaves (lines, a torn
 * line, the zeros after them) is recovered as before: every begin that was durable, once.
 */

const JOURNAL = 'w1.inflight.jsonl'

/** The journal's bytes up to its first NUL (its lines), and the file's size. */
async function journalState (dir: string): Promise<{ lines: string[], linesBytes: number, size: number, zerosAfter: boolean }> {
  const buf = await readFile(join(dir, JOURNAL))
  const nul = buf.indexOf(0)
  const text = buf.subarray(0, nul === -1 ? buf.length : nul).toString('utf8')
  const tail = nul === -1 ? Buffer.alloc(0) : buf.subarray(nul)
  return { lines: text.split('\n').filter((l) => l !== ''), linesBytes: Buffer.byteLength(text), size: buf.length, zerosAfter: tail.length > 0 && tail.every((b) => b === 0) }
}

/** A begin line as queueBegin writes it. */
const beginLine = (i: number): Buffer => Buffer.from(JSON.stringify({ b: entry(i, { status: null }) }) + '\n')

/** The requestIds a recovery would find open in the journal at `path`, sorted. */
async function openIds (path: string, dir: string): Promise<string[]> {
  return (await Journal.leftovers(path, dir, [])).map((e) => e.requestId).sort()
}

/** A journal of its own in a temp dir, compacted once (its header and zeros), closed at the end of the test. */
async function freshJournal (t: Test, syncDir?: (dir: string) => Promise<void>): Promise<{ dir: string, path: string, j: Journal }> {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const path = join(dir, JOURNAL)
  const j = syncDir === undefined ? new Journal(path) : new Journal(path, syncDir)
  await j.compact(1, [])
  return { dir, path, j }
}

async function interactions (dir: string): Promise<Map<string, string[]>> {
  const byId = new Map<string, string[]>()
  for await (const { record } of readRecords(dir)) {
    if (record.kind === 'interaction') byId.set(record.requestId, [...(byId.get(record.requestId) ?? []), record.outcome])
  }
  return byId
}

t.test('lines are written over the zeros in place; a chunk is added ahead of them; a crash recovers every durable begin once', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { fsyncIntervalMs: 60_000 })
  const opened = await journalState(dir)
  t.same(opened.lines, ['{"sinceSeq":1}'], 'a fresh journal: its header line')
  t.equal(opened.size, opened.linesBytes + PREALLOC_BYTES, 'then PREALLOC_BYTES of zeros')
  t.ok(opened.zerosAfter)

  for (let i = 0; i < 10; i++) t.same(await w.begin(entry(i, { status: null })), { durable: true })
  const ten = await journalState(dir)
  t.equal(ten.size, opened.size, 'ten begins written over the zeros: the file has not grown')
  t.equal(ten.lines.length, 11, 'the header and ten begin lines, one after another')
  t.ok(ten.lines.slice(1).every((l, i) => (JSON.parse(l) as { b: { requestId: string } }).b.requestId === `req-${i}`), 'each a whole begin, in order')
  t.ok(ten.zerosAfter, 'zeros after them')

  // Past half the zeros: the next chunk is written after the file's end, ahead of the lines.
  let n = 10
  while ((await journalState(dir)).size === opened.size && n < 2000) await w.begin(entry(n++, { status: null }))
  const grown = await journalState(dir)
  t.equal(grown.size, opened.size + PREALLOC_BYTES, `grown by one chunk after ${n} begins`)
  t.ok(grown.size - grown.linesBytes >= PREALLOC_BYTES / 2, 'at least half a chunk of zeros ahead of the lines')
  t.equal(grown.lines.length, n + 1, 'every begin line whole and in place')
  t.ok(grown.zerosAfter)

  // A crash now, and a torn line in the copy: half a begin written over the zeros, never reported durable.
  const { dir: crashed, cleanup: c2 } = await tempDir()
  t.teardown(c2)
  await cp(dir, crashed, { recursive: true })
  const torn = Buffer.from(JSON.stringify({ b: entry(9999, { status: null }) }) + '\n')
  const fh = await open(join(crashed, JOURNAL), 'r+')
  await fh.write(torn, 0, torn.length >> 1, grown.linesBytes)
  await fh.close()
  const w2 = await openWriter(crashed)
  await w2.close()
  const byId = await interactions(crashed)
  t.equal(byId.size, n, 'one record for each durable begin')
  t.ok(Array.from({ length: n }, (_, i) => byId.get(`req-${i}`)).every((o) => o?.length === 1 && o[0] === 'unknown'), 'each recorded once, outcome unknown')
  t.notOk(byId.has('req-9999'), 'the torn line is no begin')
  t.equal((await verifyDir(crashed)).ok, true, 'the chain verifies')

  for (let i = 0; i < n; i++) w.append(entry(i))
  await w.close()
})

t.test('close() leaves the journal as its header line alone, no zeros', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  await w.begin(entry(0, { status: null }))
  w.append(entry(0))
  await w.close()
  const text = await readFile(join(dir, JOURNAL), 'utf8')
  t.equal(text, '{"sinceSeq":2}\n')
  t.equal((await stat(join(dir, JOURNAL))).size, text.length)
})

t.test('leftovers: lines before the zeros, and lines appended after an older file\'s zeros on a new line, are read; the zeros are not', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const line = (i: number): string => beginLine(i).toString('utf8', 0, beginLine(i).length - 1)
  // what a compaction that failed after its write leaves: the older file, its zeros, then lines appended to it
  const path = join(dir, JOURNAL)
  await writeFile(path, Buffer.concat([
    Buffer.from(['{"sinceSeq":1}', line(0), line(1), JSON.stringify({ e: 'req-1' }), ''].join('\n')),
    Buffer.alloc(4096),
    Buffer.from(['', line(2), line(3).slice(0, 40)].join('\n'))
  ]))
  t.same(await openIds(path, dir), ['req-0', 'req-2'], 'req-0 and req-2 open; req-1 ended; the torn req-3 never durable')
})

t.test('a compaction whose reopen failed: the next commit opens the journal again and appends, from a new line', async (t) => {
  const { dir, path, j } = await freshJournal(t)
  let durable = 0
  j.queueBegin(entry(0, { status: null }), () => { durable++ })
  await j.commit()
  // A directory where the journal should be: the rename fails, and so does opening the path again.
  await rm(path)
  await mkdir(path)
  await t.rejects(j.compact(1, [beginLine(0)]), 'the compaction fails')
  await rm(path, { recursive: true })
  await writeFile(path, Buffer.concat([Buffer.from('{"sinceSeq":1}\n'), beginLine(0), Buffer.alloc(1024)])) // what a rename had left, zeros and all
  j.queueBegin(entry(1, { status: null }), () => { durable++ })
  await j.commit()
  t.equal(durable, 2, 'the begin after the failure is durable: the journal was opened again')
  t.same(await openIds(path, dir), ['req-0', 'req-1'], 'both begins read back (the new one after the zeros, on a line of its own)')
  await j.close()
})

t.test('a compaction that could not stat the file it opened: the next commit opens it again, nothing written at a stale offset', async (t) => {
  const { dir, path, j } = await freshJournal(t)
  for (let i = 0; i < 10; i++) j.queueBegin(entry(i, { status: null }), () => {})
  await j.commit()
  const probe = await open(path, 'r')
  const FileHandle = Object.getPrototypeOf(probe) as { stat: (...a: unknown[]) => Promise<unknown> }
  await probe.close()
  const stat = FileHandle.stat
  let fail = true
  FileHandle.stat = async function (this: unknown, ...a: unknown[]) {
    if (fail) { fail = false; throw Object.assign(new Error('EIO: i/o error, fstat'), { code: 'EIO' }) }
    return await stat.apply(this, a)
  }
  t.teardown(() => { FileHandle.stat = stat })
  // the old file held eleven lines; the new one holds two: a write at the old offset would land in the zeros
  await t.rejects(j.compact(1, [beginLine(9)]), /EIO/, 'the compaction fails after the rename')
  let durable = false
  j.queueBegin(entry(10, { status: null }), () => { durable = true })
  await j.commit()
  t.ok(durable)
  t.same(await openIds(path, dir), ['req-10', 'req-9'], 'the kept begin and the new one are read back')
  await j.close()
})

t.test('a compaction whose directory fsync failed: the journal asks to be rewritten at once (lost), its lines readable', async (t) => {
  let fail = false
  const { dir, path, j } = await freshJournal(t, async () => { if (fail) { fail = false; throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }) } })
  j.queueBegin(entry(0, { status: null }), () => {})
  await j.commit()
  t.equal(j.lost, false)
  fail = true
  await t.rejects(j.compact(1, [beginLine(0)]), /EIO/)
  t.equal(j.lost, true, 'a crash could bring the old file back: the writer compacts again at once (the rename retried until its directory is durable)')
  j.queueBegin(entry(1, { status: null }), () => {})
  await j.commit()
  t.same(await openIds(path, dir), ['req-0', 'req-1'])
  j.lost = false
  await j.compact(1, [beginLine(1)])
  t.equal(j.lost, false, 'a compaction whose fsync succeeds settles it')
  await j.close()
})
