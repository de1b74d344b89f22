import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { entry, openWriter, tempDir } from '../helpers/audit.js'
import type { AuditWriter } from '../../src/audit/writer.js'
import type { BeginResult } from '../../src/audit/types.js'

/*
 * journalTimeoutMs judges the disk, not the event loop. When the loop is held up (a burst of requests handled in
 * one long turn, a GC pause), expired timers run before the write completions that came in meanwhile: a begin whose
 * line was already durable must not be refused for it, nor one whose write went out late and is still within its
 * time. Refusals when the disk is at fault, within the timeout: a write that never returns (fsfreeze) and a full
 * disk in disk-full.test.ts and write-ahead.test.ts.
 */

const TIMEOUT_MS = 200

/** the event loop held, as a saturated gateway holds it */
function holdLoop (ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) { /* busy */ }
}

const nextTurn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

/** a writer whose journal has taken one line already, and a second begin just made (not awaited) */
async function secondBegin (t: Test): Promise<{ w: AuditWriter, dir: string, pending: Promise<BeginResult>, at: number }> {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { journalTimeoutMs: TIMEOUT_MS })
  t.teardown(async () => { await w.close() })
  await w.begin(entry(0, { status: null }))
  const at = Date.now()
  return { w, dir, pending: w.begin(entry(1, { status: null })), at }
}

t.test('a line written while the event loop was held past the timeout is durable, not refused', async (t) => {
  const { w, dir, pending } = await secondBegin(t)
  // the journal's write goes out in the check phase of this turn; the loop is then held well past the timeout
  await nextTurn()
  holdLoop(3 * TIMEOUT_MS)
  t.same(await pending, { durable: true })
  t.match(await readFile(join(dir, 'w1.inflight.jsonl'), 'utf8'), /"requestId":"req-1"/)
  t.equal(w.health().ok, true, 'and the writer is not reported failing')
})

t.test('a line whose write went out late, after the loop was held, waits for it within twice the timeout', async (t) => {
  const { pending, at } = await secondBegin(t)
  // held before the write could go out: the timeout passes with the disk never asked
  holdLoop(1.5 * TIMEOUT_MS)
  t.same(await pending, { durable: true })
  const waited = Date.now() - at
  t.ok(waited < 2 * TIMEOUT_MS + 100, `durable after ${waited} ms`)
})

t.test('past maxBacklog, right after the loop was held past the timeout: a begin waits for the I/O that came in meanwhile, durable, not refused at once; /readyz likewise', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  // a longer timeout here: the line queued before the hold has the rest of twice it for the second write to return
  const timeout = 2 * TIMEOUT_MS
  const w = await openWriter(dir, { journalTimeoutMs: timeout, maxBacklog: 1 })
  t.teardown(async () => { await w.close() })
  await w.begin(entry(0, { status: null }))
  const first = w.begin(entry(1, { status: null }))
  // its write goes out in this turn's check phase; a line queued behind it fills the backlog; the loop is then held
  // past the timeout, the write's completion left unread, and the next begin is made before the loop reads its I/O
  await nextTurn()
  const queued = w.begin(entry(3, { status: null }))
  // (held past the timeout, well under twice it: the queued line's own wait still within its time)
  holdLoop(1.2 * timeout)
  t.match(w.health(), { ok: false, reasons: [/has not returned for .*\(1 record\(s\) not durable\)/] }, 'before the I/O is read, the write looks stalled, the backlog full')
  const second = w.begin(entry(2, { status: null }))
  const ready = w.readiness()
  t.same(await second, { durable: true }, 'past maxBacklog, judged after the I/O: durable')
  t.same(await first, { durable: true })
  t.same(await queued, { durable: true })
  t.same(await ready, { ok: true, reasons: [] }, 'and /readyz reads it as ready')
  t.match(await readFile(join(dir, 'w1.inflight.jsonl'), 'utf8'), /"requestId":"req-2"/)
})
