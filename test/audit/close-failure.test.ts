import t from 'tap'
import { readdir, readlink, rm } from 'node:fs/promises'
import { SegmentWriter } from '../../src/audit/segment-writer.js'
import { readRecords } from '../../src/audit/read.js'
import { verifyDir } from '../../src/audit/verify.js'
import { closeRuntime } from '../../src/runtime.js'
import { entry, openWriter, tempDir } from '../helpers/audit.js'
import { baseConfig, buildTestGateway, startUpstream } from '../helpers/gateway.js'
import { sharedRedisUrl, uniquePrefix, waitFor } from '../helpers/redis.js'

/*
 * close() when the disk fails at the end: it throws (naming what was not written), stops retrying, lets go of its
 * files and leaves the journal as it is, so the next start records every forwarded interaction still open as
 * `unknown`. And closeRuntime closes every other part even when the audit log's close failed.
 */

async function fdsUnder (dir: string): Promise<number> {
  let n = 0
  for (const fd of await readdir('/proc/self/fd')) {
    try { if ((await readlink(`/proc/self/fd/${fd}`)).startsWith(dir)) n++ } catch { /* closed meanwhile */ }
  }
  return n
}

t.test('a segment write failing at close: close() throws, no retry follows, no file is left open, the journal recovers the begun interaction', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, { fsyncIntervalMs: 60_000 })
  w.append(entry(9))
  await w.flush() // a segment open, with a durable record in it
  t.same(await w.begin(entry(0, { status: null })), { durable: true })
  w.append(entry(0))
  w.append(entry(1)) // an interaction that was never forwarded (no begin): only its final record says it happened

  const orig = SegmentWriter.prototype.write
  let writes = 0
  SegmentWriter.prototype.write = async function () {
    writes++
    throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })
  }
  t.teardown(() => { SegmentWriter.prototype.write = orig })

  await t.rejects(w.close(), /audit flush failed: 2 record\(s\) not written \(EIO\)/, 'close() names what was not written')
  t.ok(writes >= 1, `the segment write was tried (${writes})`)
  t.equal(await fdsUnder(dir), 0, 'no file under the audit directory is left open')
  const after = writes
  // The writer's backoff starts at 50 ms and doubles: a loop still retrying would have written again by now.
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(writes, after, 'no write is tried after close() gave up')
  t.same(await w.begin(entry(2, { status: null })), { durable: false, reason: 'audit: the log is closed' })

  SegmentWriter.prototype.write = orig
  const w2 = await openWriter(dir)
  await w2.close()
  const outcomes = new Map<string, string[]>()
  for await (const { record } of readRecords(dir)) {
    if (record.kind === 'interaction') outcomes.set(record.requestId, [...(outcomes.get(record.requestId) ?? []), record.outcome])
  }
  t.equal(outcomes.get('req-9')?.length, 1, 'the record made durable before the failure: there, once')
  t.same(outcomes.get('req-0'), ['unknown'], 'the forwarded interaction: one record, outcome unknown, from the journal')
  t.notOk(outcomes.has('req-1'), 'the never-forwarded one is lost with the memory it was held in (the error said so)')
  const v = await verifyDir(dir)
  t.equal(v.ok, true, `the chain verifies, the segment left unsealed sealed by the next start: ${JSON.stringify(v.problem ?? 'ok')}`)
})

t.test('closeRuntime: the audit log failing to close does not leave Redis, the geo watchers or the policy store open', async (t) => {
  const up = await startUpstream((_req, res) => { res.end('{}') })
  t.teardown(async () => { await up.close() })
  const gw = await buildTestGateway(baseConfig(up.url, { redis: { url: sharedRedisUrl(), keyPrefix: uniquePrefix('close-failure') } }))
  t.teardown(async () => { await rm(gw.dir, { recursive: true, force: true }) })
  const redis = gw.rt.redis
  if (redis === null) throw new Error('the test gateway has no Redis client')
  await waitFor(() => redis.status === 'ready', 5000, 'Redis to be ready')
  const closeAudit = gw.rt.audit.close.bind(gw.rt.audit)
  gw.rt.audit.close = async () => {
    await closeAudit()
    throw new Error('audit flush failed: 3 record(s) not written (EIO)')
  }
  let liveClosed = false
  const closeLive = gw.rt.live.close.bind(gw.rt.live)
  gw.rt.live.close = async () => { liveClosed = true; await closeLive() }
  let geoClosed = false
  const closeGeo = gw.rt.geo.close.bind(gw.rt.geo)
  gw.rt.geo.close = async () => { geoClosed = true; await closeGeo() }

  await gw.app.close()
  await gw.admin.close()
  await t.rejects(closeRuntime(gw.rt), /audit flush failed: 3 record\(s\) not written/, 'the audit log\'s failure is what closeRuntime throws')
  t.ok(geoClosed, 'the geo service was closed after it')
  t.ok(liveClosed, 'and the policy store')
  await waitFor(() => redis.status === 'end', 5000, 'the Redis connection to end')
  t.equal(redis.status, 'end', 'and the Redis connection')
})
