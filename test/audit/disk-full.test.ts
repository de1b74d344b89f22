import t, { type Test } from 'tap'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { buildTestGateway, baseConfig, startUpstream, type TestGateway } from '../helpers/gateway.js'
import { listen, send, chat, TIER1 } from '../helpers/forward.js'
import { mountSkip, fill, tmpfs, ext4, type Ext4 } from '../helpers/mounts.js'
import { readRecords } from '../../src/audit/read.js'
import { verifyDir } from '../../src/audit/verify.js'
import type { InteractionRecord, SystemRecord } from '../../src/audit/types.js'

/*
 * The audit directory on a real, small tmpfs that fills up: interactions are refused (503 audit_unavailable)
 * within the bound and never forwarded off the record, /readyz and the metrics say so, and once the filesystem
 * is grown (remount) the backlog is written in order, the chain verifies, and traffic resumes by itself.
 */

interface Sent { id: string, status: number, code: string | null, ms: number }

async function post (base: string, id: string): Promise<Sent> {
  const t0 = Date.now()
  const a = await send(base, '/v1/chat/completions', { headers: { ...TIER1, 'x-request-id': id }, body: chat('llama-3.1-8b') })
  let code: string | null = null
  try { code = (JSON.parse(a.text) as { error?: { code?: string } }).error?.code ?? null } catch { /* a model answer */ }
  return { id, status: a.status, code, ms: Date.now() - t0 }
}

async function metric (gw: TestGateway, name: string): Promise<number> {
  const text = (await gw.admin.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer test-auditor' } })).body
  const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)
  return m === null ? NaN : Number(m[1])
}

async function until (what: string, cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await delay(20)
  }
}

t.test('audit disk full: 503 audit_unavailable within the bound, not ready, metrics; grown again: backlog written, chain intact, traffic resumes', { skip: mountSkip() }, async (t) => {
  const m = await tmpfs(t, '512k')
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  const timeoutMs = 300
  const auditDir = join(m.dir, 'audit')
  const gw = await buildTestGateway(baseConfig(up.url, { audit: { dir: auditDir, scope: 'all', fsyncIntervalMs: 5, journalTimeoutMs: timeoutMs, maxBacklog: 20 } }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const base = await listen(gw)
  const sent: Sent[] = []

  for (let i = 0; i < 10; i++) sent.push(await post(base, `before-${i}`))
  t.ok(sent.every((s) => s.status === 200), 'served while there is room')
  await gw.rt.audit.flush()

  await fill(m.dir)
  const full: Sent[] = []
  for (let round = 0; round < 6; round++) full.push(...await Promise.all(Array.from({ length: 10 }, async (_, i) => await post(base, `full-${round}-${i}`))))
  sent.push(...full)
  const refused = full.filter((s) => s.status === 503)
  // The journal's preallocated zeros can still take begins while the disk is full (whenever the failing disk's
  // backoff lets the journal write), so some requests go on being forwarded, each durable in the journal, their
  // final records held in memory, up to maxBacklog (20; a round of 10 may pass the check together); the rest are
  // refused. What matters is below: nothing reaches the backend that is not on the record.
  t.ok(refused.length >= full.length - 30, `${refused.length} of ${full.length} refused while the disk is full (maxBacklog 20)`)
  t.ok(refused.every((s) => s.code === 'audit_unavailable'), '503 audit_unavailable')
  const worst = Math.max(...refused.map((s) => s.ms))
  t.ok(worst < timeoutMs + 1000, `refused within journalTimeoutMs (${timeoutMs} ms) plus slack: worst ${worst} ms`)
  t.comment(`time to refuse: first ${refused[0]?.ms ?? NaN} ms, worst ${worst} ms, last ${refused.at(-1)?.ms ?? NaN} ms (journalTimeoutMs ${timeoutMs}, maxBacklog 20)`)

  const ready = await gw.admin.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, '/readyz not ready')
  const body = ready.json<{ ready: boolean, reasons: string[] }>()
  t.equal(body.ready, false)
  t.match(body.reasons[0], /^audit: ENOSPC writing .*audit since .* record\(s\) not durable/, 'the reason names the error and the directory')
  t.ok(await metric(gw, 'geogate_audit_queue_depth') > 0, 'queue depth counts the retry backlog')
  t.ok(await metric(gw, 'geogate_audit_writer_lag_seconds') > 0, 'lag counts it too')
  t.equal(await metric(gw, 'geogate_audit_write_failing'), 1)
  t.ok(await metric(gw, 'geogate_audit_unavailable_total') >= refused.length, 'refusals counted')

  const grownAt = Date.now()
  m.remount('size=8m')
  await until('/readyz ready again', async () => (await gw.admin.inject({ method: 'GET', url: '/readyz' })).statusCode === 200)
  const readyMs = Date.now() - grownAt
  let firstServed = await post(base, 'after-0')
  while (firstServed.status !== 200 && Date.now() - grownAt < 10_000) firstServed = await post(base, `after-${sent.length}`)
  sent.push(firstServed)
  t.comment(`time to recover after the remount: ready in ${readyMs} ms, first request served ${Date.now() - grownAt} ms after it`)
  for (let i = 1; i < 10; i++) sent.push(await post(base, `after-${i}`))
  t.ok(sent.filter((s) => s.id.startsWith('after-')).every((s) => s.status === 200), 'traffic resumed by itself')
  t.equal(await metric(gw, 'geogate_audit_write_failing'), 0)

  await gw.app.close()
  await gw.rt.audit.close()
  const recs: InteractionRecord[] = []
  const system: SystemRecord[] = []
  for await (const { record } of readRecords(auditDir)) {
    if (record.kind === 'interaction') recs.push(record)
    if (record.kind === 'system') system.push(record)
  }
  const count = new Map<string, number>()
  for (const r of recs) count.set(r.requestId, (count.get(r.requestId) ?? 0) + 1)
  const missing = sent.filter((s) => !count.has(s.id)).map((s) => s.id)
  const duplicated = [...count].filter(([, n]) => n > 1).map(([id]) => id)
  const received = new Set(up.requests.map((r) => String(r.headers['x-request-id'])))
  const allowed = new Set(recs.filter((r) => r.decision === 'allow').map((r) => r.requestId))
  t.same(missing, [], '0 missing: every request, refused ones included, has its record')
  t.same(duplicated, [], '0 duplicated')
  t.same([...received].sort(), [...allowed].sort(), 'what the backend received = the allowed records')
  t.ok(recs.filter((r) => r.status === 503).every((r) => r.rule === 'audit:unavailable' && r.decision === 'deny' && r.outcome === 'refused'), 'refusals recorded as such')
  t.ok(system.some((s) => s.event === 'write-failure' && s.detail.code === 'ENOSPC'), 'the failure itself is on the record')
  const v = await verifyDir(auditDir)
  t.equal(v.ok, true, `audit verify: ${JSON.stringify(v.problem ?? 'ok')}`)
  t.comment(`disk full: sent ${sent.length}, backend received ${received.size}, recorded ${recs.length}, missing ${missing.length}, duplicated ${duplicated.length}, refused ${refused.length}`)
})

t.test('audit.onFailure serve: forwarded without a durable record, counted and logged', { skip: mountSkip() }, async (t) => {
  const m = await tmpfs(t, '512k')
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end('{"id":"x","object":"chat.completion","choices":[]}')
  })
  const gw = await buildTestGateway(baseConfig(up.url, { audit: { dir: join(m.dir, 'audit'), scope: 'all', fsyncIntervalMs: 5, journalTimeoutMs: 200, onFailure: 'serve' } }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const base = await listen(gw)
  await post(base, 'warm')
  await gw.rt.audit.flush()
  await fill(m.dir)
  // Some begins still fit in the journal's preallocated zeros (durable: not counted); the others wait out the
  // failing disk's backoff (journalTimeoutMs) and are served without a durable record, counted.
  const got: Sent[] = []
  let served = 0
  for (let round = 0; round < 40 && served < 5; round++) {
    got.push(...await Promise.all(Array.from({ length: 20 }, async (_, i) => await post(base, `serve-${round}-${i}`))))
    served = await metric(gw, 'geogate_audit_unrecorded_served_total')
  }
  t.ok(got.every((s) => s.status === 200), `served (${got.length})`)
  t.ok(served >= 5, `served without a durable record: counted (${served} of ${got.length}, once the journal's zeros were used up)`)
  t.equal((await gw.admin.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, 'still not ready')
  m.remount('size=8m')
  await until('the backlog written', async () => gw.rt.audit.stats().queueDepth === 0)
})

/** The gateway closed, every request sent has exactly one interaction record, and the chain verifies. */
async function recordedOnce (t: Test, gw: TestGateway, auditDir: string, sent: Sent[]): Promise<void> {
  await gw.app.close()
  await gw.rt.audit.close()
  const ids = new Map<string, number>()
  for await (const { record } of readRecords(auditDir)) if (record.kind === 'interaction') ids.set(record.requestId, (ids.get(record.requestId) ?? 0) + 1)
  t.same(sent.filter((s) => !ids.has(s.id)).map((s) => s.id), [], '0 missing')
  t.same([...ids].filter(([, n]) => n > 1), [], '0 duplicated')
  t.equal((await verifyDir(auditDir)).ok, true, 'the chain verifies')
}

/** A gateway whose audit directory is on a small ext4 image that fsfreeze can stop (journalTimeoutMs 300, maxBacklog 5). */
async function freezableGateway (t: Test, audit: Record<string, unknown>): Promise<{ disk: Ext4, up: Awaited<ReturnType<typeof startUpstream>>, gw: TestGateway, base: string, auditDir: string, timeoutMs: number }> {
  const disk = await ext4(t, 32)
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end('{"id":"x","object":"chat.completion","choices":[]}')
  })
  const timeoutMs = 300
  const auditDir = join(disk.dir, 'audit')
  const gw = await buildTestGateway(baseConfig(up.url, { audit: { dir: auditDir, scope: 'all', fsyncIntervalMs: 5, journalTimeoutMs: timeoutMs, maxBacklog: 5, ...audit } }))
  t.teardown(async () => { disk.thaw(); await gw.close(); await up.close() })
  return { disk, up, gw, base: await listen(gw), auditDir, timeoutMs }
}

t.test('a mount that stops answering (fsfreeze): requests refused within journalTimeoutMs, never hung, and past maxBacklog at once; /readyz says the write has not returned; thawed: traffic resumes, nothing lost', { skip: mountSkip(['losetup', 'mkfs.ext4', 'fsfreeze']) }, async (t) => {
  const { disk, up, gw, base, auditDir, timeoutMs } = await freezableGateway(t, {})
  const sent: Sent[] = []
  for (let i = 0; i < 5; i++) sent.push(await post(base, `before-${i}`))
  disk.freeze()
  const frozen = await Promise.all(Array.from({ length: 10 }, async (_, i) => await post(base, `frozen-${i}`)))
  sent.push(...frozen)
  t.ok(frozen.every((s) => s.status === 503 && s.code === 'audit_unavailable'), 'refused while the mount does not answer')
  const worst = Math.max(...frozen.map((s) => s.ms))
  t.ok(worst < timeoutMs + 1000, `within journalTimeoutMs plus slack: worst ${worst} ms`)
  await until('/readyz to say the write is stuck', async () => {
    const r = await gw.admin.inject({ method: 'GET', url: '/readyz' })
    return r.statusCode === 503 && /has not returned for/.test(r.body)
  })
  t.equal(await metric(gw, 'geogate_audit_write_failing'), 1)
  // the refused interactions' records wait in memory for the mount: past maxBacklog (5), a write that has not
  // returned for journalTimeoutMs refuses new interactions at once
  t.ok(gw.rt.audit.stats().queueDepth >= 5, `backlog ${gw.rt.audit.stats().queueDepth}`)
  const past: Sent[] = []
  for (let i = 0; i < 5; i++) past.push(await post(base, `past-${i}`))
  sent.push(...past)
  t.ok(past.every((s) => s.status === 503 && s.code === 'audit_unavailable'), 'past maxBacklog: refused')
  t.ok(past.every((s) => s.ms < timeoutMs), `past maxBacklog: at once, not after journalTimeoutMs (${past.map((s) => s.ms).join(', ')} ms against ${timeoutMs})`)
  const thawedAt = Date.now()
  disk.thaw()
  await until('ready again', async () => (await gw.admin.inject({ method: 'GET', url: '/readyz' })).statusCode === 200)
  t.comment(`stuck mount: refused in ${worst} ms at worst; ready ${Date.now() - thawedAt} ms after the thaw`)
  for (let i = 0; i < 5; i++) sent.push(await post(base, `after-${i}`))
  t.ok(sent.filter((s) => s.id.startsWith('after-')).every((s) => s.status === 200), 'traffic resumed by itself')
  await recordedOnce(t, gw, auditDir, sent)
  const received = new Set(up.requests.map((r) => String(r.headers['x-request-id'])))
  t.ok([...frozen, ...past].every((s) => !received.has(s.id)), 'none of the refused reached the backend')
})

t.test('a mount that stops answering, audit.onFailure serve: past maxBacklog, requests are served without keeping their journal lines (the in-flight set does not grow); thawed: every one recorded once', { skip: mountSkip(['losetup', 'mkfs.ext4', 'fsfreeze']) }, async (t) => {
  const { disk, up, gw, base, auditDir, timeoutMs } = await freezableGateway(t, { onFailure: 'serve' })
  const sent: Sent[] = []
  for (let i = 0; i < 3; i++) sent.push(await post(base, `before-${i}`))
  disk.freeze()
  sent.push(...await Promise.all(Array.from({ length: 10 }, async (_, i) => await post(base, `frozen-${i}`))))
  await until('/readyz to say the write is stuck', async () => /has not returned for/.test((await gw.admin.inject({ method: 'GET', url: '/readyz' })).body))
  const inFlight = gw.rt.audit.stats().inFlight
  const past: Sent[] = []
  for (let i = 0; i < 20; i++) past.push(await post(base, `past-${i}`))
  sent.push(...past)
  t.ok(past.every((s) => s.status === 200), 'served (audit.onFailure serve)')
  t.ok(past.every((s) => s.ms < timeoutMs), `at once, not after journalTimeoutMs (${past.map((s) => s.ms).join(', ')} ms)`)
  t.ok(gw.rt.audit.stats().inFlight <= inFlight, `in flight ${inFlight} before, ${gw.rt.audit.stats().inFlight} after 20 more: their journal lines were not kept`)
  disk.thaw()
  await until('ready again', async () => (await gw.admin.inject({ method: 'GET', url: '/readyz' })).statusCode === 200)
  await recordedOnce(t, gw, auditDir, sent)
})
