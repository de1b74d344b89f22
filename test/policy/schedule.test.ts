/* Scheduled policy changes: validated stage by stage, switched at their instant on every replica, recorded. */
import t from 'tap'
import { createHash } from 'node:crypto'
import { buildTestGateway, baseConfig, sha, startUpstream, type TestGateway } from '../helpers/gateway.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { testRedis, uniquePrefix, deletePrefix, policyVersions, waitFor } from '../helpers/ops.js'
import { reloadConfig } from '../../src/reload.js'
import pino from 'pino'
import { LivePolicy, type PolicyChange } from '../../src/policy/live.js'
import { MemoryOverrideStore } from '../../src/policy/live-store.js'
import { parseConfig, ConfigError } from '../../src/config/load.js'
import { applySchedule } from '../../src/config/schedule.js'
import { readRecords } from '../../src/audit/read.js'
import type { InteractionRecord } from '../../src/audit/types.js'

const GB = '81.2.69.142'
const US = '8.8.8.8'
const SWITCH = '2027-01-15T00:00:00Z'
const chat = { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
// From the instant on, GB is embargoed: it leaves tier1 because the entry names it in another tier.
const schedule = [{ effectiveFrom: SWITCH, note: 'test: GB moves', locations: { tiers: { embargoed: ['CU', 'IR', 'KP', 'SY', 'UA-43', 'GB'] } } }]

function issuesOf (raw: Record<string, unknown>): string[] {
  try { parseConfig(raw); return [] } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`)
    throw err
  }
}

t.test('check-config validates the schedule: dates, order, and every stage as a whole policy', async (t) => {
  t.same(issuesOf(baseConfig(undefined, { schedule })), [], 'a valid schedule')
  t.match(issuesOf(baseConfig(undefined, { schedule: [{ effectiveFrom: '15 January 2027', locations: { default: 'tier1' } }] })).join('\n'), /effectiveFrom.*date-time/)
  t.match(issuesOf(baseConfig(undefined, {
    schedule: [{ effectiveFrom: '2027-02-01T00:00:00Z', locations: { default: 'tier1' } }, { effectiveFrom: SWITCH, locations: { default: 'tier2' } }]
  })).join('\n'), /schedule\/1\/effectiveFrom: entries must be in ascending order/)
  t.match(issuesOf(baseConfig(undefined, { schedule: [{ effectiveFrom: SWITCH, locations: { default: 'gold' } }] })).join('\n'),
    /\/schedule\/0 \(from 2027-01-15T00:00:00Z\)\/locations\/default: unknown tier "gold"/, 'a stage naming an unknown tier')
  t.match(issuesOf(baseConfig(undefined, { schedule: [{ effectiveFrom: SWITCH, tiers: { tier2: { models: ['*'], capabilities: ['teleport'] } } }] })).join('\n'),
    /\/schedule\/0\/tiers\/tier2\/capabilities/, 'a partial tier is checked by the schema')
  t.match(issuesOf(baseConfig(undefined, { schedule: [{ effectiveFrom: SWITCH }] })).join('\n'), /changes nothing/)

  const c = parseConfig(baseConfig(undefined, { schedule }))
  const before = applySchedule(c, Date.parse(SWITCH) - 1)
  const after = applySchedule(c, Date.parse(SWITCH))
  t.same(before.locations.tiers.tier1, ['US', 'GB', 'DE'])
  t.same(after.locations.tiers.tier1, ['US', 'DE'], 'a place named in the entry leaves its old tier')
  t.same(after.locations.tiers.embargoed, ['CU', 'IR', 'KP', 'SY', 'UA-43', 'GB'])
})

t.test('a scheduled change flips decisions at its instant on two replicas, and the records carry both versions', async (t) => {
  const redis = await testRedis()
  const prefix = uniquePrefix('schedule')
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  // One fake clock for both replicas: a second before the instant. Nothing sleeps; time is moved.
  let now = Date.parse(SWITCH) - 1000
  const clock = (): number => now
  const cfg = baseConfig(up.url, { redis: { url: redis.url, keyPrefix: prefix }, schedule, audit: { scope: 'all' } })
  const a = await buildTestGateway(cfg, { clock })
  const b = await buildTestGateway(cfg, { clock })
  t.teardown(async () => {
    await a.close(); await b.close(); await up.close()
    await deletePrefix(redis.url, prefix)
    await redis.stop()
  })
  const call = async (gw: TestGateway, ip: string): Promise<number> =>
    (await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: ip, headers: { authorization: 'Bearer test-key-tier1' }, payload: chat })).statusCode

  const v1 = a.rt.policy.snapshot().hash
  t.equal(b.rt.policy.snapshot().hash, v1, 'both replicas serve the same version')
  t.same([await call(a, GB), await call(b, GB), await call(a, US)], [200, 200, 200], 'before the instant GB is tier1')
  const explainAt = async (at: string): Promise<string> => (await a.admin.inject({
    method: 'GET', url: `/admin/explain?ip=${GB}&keyId=k1&model=llama-3.1-8b&at=${at}`, headers: { authorization: 'Bearer test-auditor' }
  }).then((r) => r.json() as { rule: string })).rule
  t.equal(await explainAt('2027-02-01T00:00:00Z'), 'location:embargoed', '/admin/explain?at= answers as of a later time')
  t.equal((await a.admin.inject({ method: 'GET', url: `/admin/explain?ip=${GB}&keyId=k1&model=llama-3.1-8b&at=yesterday`, headers: { authorization: 'Bearer test-auditor' } })).statusCode, 400)

  now = Date.parse(SWITCH) // the instant; no timer has run (none could: the real time is far from it)
  t.same([await call(a, GB), await call(b, GB)], [451, 451], 'at the instant GB is refused on both replicas')
  t.equal(await call(a, US), 200, 'and nothing else changed')
  const v2 = a.rt.policy.snapshot().hash
  t.not(v2, v1)
  t.equal(b.rt.policy.snapshot().hash, v2)

  for (const [name, gw] of [['A', a], ['B', b]] as const) {
    await gw.rt.audit.flush()
    const recs: InteractionRecord[] = []
    for await (const { record } of readRecords(gw.rt.audit.dir, { kind: 'interaction' })) if (record.kind === 'interaction') recs.push(record)
    const gb = recs.filter((r) => r.country === 'GB')
    t.same(gb.map((r) => [r.policyVersion, r.decision]), [[v1, 'allow'], [v2, 'deny']], `replica ${name}: the records on both sides carry the two versions`)
    t.match(gb[1], { rule: 'location:embargoed', capabilities: ['chat'], keyCountry: 'US', maxOutputTokens: null, address: 'public' })
    const versions = await policyVersions(gw.rt)
    t.same(versions.map((v) => [v.target, (v.after as { cause: string }).cause]), [[v1, 'start'], [v2, 'schedule']], `replica ${name}: each version once, in the chain`)
    for (const v of versions) {
      const text = (v.after as { policy: string }).policy
      t.equal('p-' + createHash('sha256').update(text).digest('hex').slice(0, 16), v.target, 'the recorded text hashes to its version')
      t.notMatch(text, /[0-9a-f]{64}/, 'no key hash in the log, only fingerprints')
      t.match(text, `"fingerprint":"${sha('test-key-tier1').slice(0, 8)}"`)
    }
  }

  // Every other kind of change gets its version record too: a live change on A (and on B, who syncs it), a reload.
  const put = await a.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', headers: { authorization: 'Bearer test-admin' }, payload: { models: ['*'], capabilities: ['chat'] } })
  t.equal(put.statusCode, 200)
  const v3 = a.rt.policy.snapshot().hash
  await waitFor(() => b.rt.policy.snapshot().hash === v3, 5000, 'replica B adopting the change')
  const dir = await mkdtemp(join(tmpdir(), 'geogate-schedule-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'next.json')
  await writeFile(file, JSON.stringify({ ...cfg, models: { ...(cfg.models as object), 'llama-3.1-70b': { backend: 'gpu', classification: 'EAR99' } } }))
  const reloaded = await reloadConfig(a.rt, file, {})
  t.equal(reloaded.ok, true, JSON.stringify(reloaded))
  const v4 = a.rt.policy.snapshot().hash
  t.same((await policyVersions(a.rt)).map((v) => [v.target, (v.after as { cause: string }).cause]), [[v1, 'start'], [v2, 'schedule'], [v3, 'override'], [v4, 'reload']])
  t.same((await policyVersions(b.rt)).map((v) => [v.target, (v.after as { cause: string }).cause]).slice(0, 3), [[v1, 'start'], [v2, 'schedule'], [v3, 'sync']])
})

t.test('the timer switches at the instant by itself, with no request to trigger it', async (t) => {
  const at = new Date(Date.now() + 300).toISOString()
  const config = parseConfig(baseConfig(undefined, { schedule: [{ effectiveFrom: at, locations: { default: 'tier1' } }] }))
  const live = new LivePolicy(config, new MemoryOverrideStore(), pino({ level: 'silent' }))
  t.teardown(async () => { await live.close() })
  const changes: PolicyChange[] = []
  live.onChange((c) => { changes.push(c) })
  t.equal(live.nextSwitch, Date.parse(at))
  await waitFor(() => changes.length > 0, 5000, 'the scheduled switch')
  t.equal(changes[0]?.cause, 'schedule')
  t.ok(Date.now() >= Date.parse(at), 'not before its instant')
  t.equal(changes[0]?.config.locations.default, 'tier1')
  t.equal(live.nextSwitch, null, 'nothing more scheduled')
})
