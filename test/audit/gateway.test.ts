import t from 'tap'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildTestGateway, baseConfig, startUpstream, sha, gatewayWithUpstream } from '../helpers/gateway.js'
import { writeTestGeoDbs } from '../helpers/geo-fixtures.js'
import { startRedisServer, uniquePrefix } from '../helpers/redis.js'
import { readRecords } from '../../src/audit/read.js'
import { verifyDir } from '../../src/audit/verify.js'
import type { InteractionRecord } from '../../src/audit/types.js'

/**
 * Completeness through a real gateway on a real port: requests of every kind, concurrently. The request ids the
 * backend saw must be exactly the allowed records; every refusal has its record; nothing missing, nothing twice.
 */

const N = 5
const geoDir = await mkdtemp(join(tmpdir(), 'geogate-audit-geo-'))
t.teardown(async () => { await rm(geoDir, { recursive: true, force: true }) })
const dbs = await writeTestGeoDbs(geoDir)
const ip = (label: string): string => dbs.known.find((k) => k.label === label)?.ip ?? ''

interface Sent { id: string, kind: string, status: number | null }

function send (port: number, body: Record<string, unknown>, headers: Record<string, string>, abortAfterFirstChunk = false): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body)
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), ...headers } }, (res) => {
      if (abortAfterFirstChunk) {
        res.once('data', () => { req.destroy(); resolve(null) })
        return
      }
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
      res.on('error', reject)
    })
    req.on('error', (err) => { if (abortAfterFirstChunk) resolve(null); else reject(err) })
    req.end(payload)
  })
}

t.test('N requests of every kind: backend-seen ids = allowed records, every refusal recorded, none twice', async (t) => {
  const up = await startUpstream((req, res, body) => {
    const b = JSON.parse(body) as { stream?: boolean, messages?: Array<{ content: string }> }
    const what = b.messages?.[0]?.content ?? ''
    if (what === 'FAIL') { req.socket.destroy(); return }
    if (b.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n')
      if (what === 'HANG') return // open until the gateway gives up on it
      res.write('data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}\n\n')
      res.end('data: [DONE]\n\n')
      return
    }
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))
  })
  const cfg = baseConfig(up.url, {
    server: { trustedProxies: ['127.0.0.1/32'] },
    geo: { databases: [dbs.city, dbs.anonymousIp] },
    audit: { scope: 'all', ip: 'truncated', fsyncIntervalMs: 5 }
  })
  const tiers = cfg.tiers as Record<string, unknown>
  tiers.tiny = { models: ['llama-*'], capabilities: ['chat', 'streaming'], limits: { requestsPerMinute: 3 }, failMode: 'closed' }
  ;(cfg.keys as unknown[]).push({ id: 'k3', sha256: sha('test-key-tiny'), org: 'Org Three', tier: 'tiny' })
  const gw = await buildTestGateway(cfg)
  t.teardown(async () => { await gw.close(); await up.close() })
  await gw.app.listen({ host: '127.0.0.1', port: 0 })
  const port = (gw.app.server.address() as AddressInfo).port

  const chat = (content: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ model: 'llama-3.1-8b', messages: [{ role: 'user', content }], ...extra })
  const tier1 = { authorization: 'Bearer test-key-tier1' }
  const de = { 'x-forwarded-for': ip('germany-us-registered') }
  const sent: Sent[] = []
  let n = 0
  const go = async (kind: string, body: Record<string, unknown>, headers: Record<string, string>, abort = false): Promise<void> => {
    const id = `${kind}-${n++}`
    const status = await send(port, body, { ...headers, 'x-request-id': id }, abort)
    sent.push({ id, kind, status })
  }
  const kinds: Array<Promise<void>> = []
  for (let i = 0; i < N; i++) {
    kinds.push(go('allowed', chat('hello'), { ...tier1, ...de }))
    kinds.push(go('stream', chat('hello', { stream: true }), { ...tier1, ...de }))
    kinds.push(go('location', chat('hello'), { ...tier1, 'x-forwarded-for': ip('cuba') }))
    kinds.push(go('anonymizer', chat('hello'), { ...tier1, 'x-forwarded-for': ip('vpn-netherlands') }))
    kinds.push(go('capability', { model: 'frontier-1', messages: [{ role: 'user', content: 'x' }] }, { authorization: 'Bearer test-key-tier2', ...de }))
    kinds.push(go('backend-failure', chat('FAIL'), { ...tier1, ...de }))
    kinds.push(go('client-abort', chat('HANG', { stream: true }), { ...tier1, ...de }, true))
  }
  await Promise.all(kinds)
  // Limits: the tier allows 3 a minute; one after another so the refusals are the last ones.
  for (let i = 0; i < 3 + N; i++) await go('limit', chat('hello'), { authorization: 'Bearer test-key-tiny', ...de })

  // Every ending reaches the audit; close() then writes anything still open (as outcome unknown).
  await gw.app.close()
  await gw.rt.audit.close()
  const records: InteractionRecord[] = []
  for await (const { record } of readRecords(gw.rt.audit.dir)) if (record.kind === 'interaction') records.push(record)

  const byId = new Map<string, InteractionRecord[]>()
  for (const r of records) byId.set(r.requestId, [...(byId.get(r.requestId) ?? []), r])
  const missing = sent.filter((s) => !byId.has(s.id)).map((s) => s.id)
  const duplicated = [...byId.entries()].filter(([, rs]) => rs.length > 1).map(([id]) => id)
  t.same(missing, [], '0 missing')
  t.same(duplicated, [], '0 duplicated')
  t.equal(records.length, sent.length, 'one record per request sent')

  const seen = new Set(up.requests.map((r) => String(r.headers['x-request-id'])))
  const allowed = new Set(records.filter((r) => r.decision === 'allow').map((r) => r.requestId))
  t.same([...seen].sort(), [...allowed].sort(), 'the request ids the backend saw = the allowed records')

  for (const r of records) {
    const s = sent.find((x) => x.id === r.requestId)
    if (s?.status !== null && s?.status !== undefined) t.equal(r.status, s.status, `${r.requestId}: the status the caller got`)
    if (r.decision === 'deny') t.ok([403, 404, 429, 451, 503].includes(r.status ?? 0), `${r.requestId}: a refusal status`)
    t.equal(r.keyId?.startsWith('k'), true)
    t.notMatch(JSON.stringify(r), /test-key/, 'never the API key')
    t.match(r.ip, /^(\d+\.\d+\.\d+\.0\/24|[0-9a-f:]+::\/48)$/, 'ip truncated')
  }
  const kindOf = (r: InteractionRecord): string => r.requestId.replace(/-\d+$/, '')
  const of = (k: string): InteractionRecord[] => records.filter((r) => kindOf(r) === k)
  t.ok(of('allowed').every((r) => r.decision === 'allow' && r.status === 200 && r.country === 'DE' && r.crossBorder && r.servingRegion === 'US'), 'allowed: DE caller, US backend')
  t.ok(of('allowed').every((r) => r.geodbBuild === dbs.buildEpoch.toISOString() && r.classification === 'EAR99' && r.locationTier === 'tier1' && r.keyTier === 'tier1'), 'geo database build, classification and tiers')
  t.same(of('location').map((r) => [r.decision, r.status, r.country, r.outcome]), of('location').map(() => ['deny', 451, 'CU', 'refused']), 'refused by location')
  t.ok(of('location').every((r) => /location|embargo/.test(r.rule)), 'the rule that decided')
  t.same(of('anonymizer').map((r) => [r.decision, r.status, r.anonymizer]), of('anonymizer').map(() => ['deny', 451, ['vpn']]), 'anonymizer flags')
  t.same(of('capability').map((r) => [r.decision, r.status, r.model, r.classification]), of('capability').map(() => ['deny', 403, 'frontier-1', '4E091']), 'refused by capability')
  t.ok(of('stream').every((r) => r.decision === 'allow' && r.stream), 'streams recorded')
  t.same(of('limit').map((r) => [r.decision, r.status]), [...Array.from({ length: 3 }, () => ['allow', 200]), ...Array.from({ length: N }, () => ['deny', 429])], 'refused by limit after 3 a minute')
  t.ok(of('limit').filter((r) => r.decision === 'deny').every((r) => r.rule.startsWith('limit:') && r.outcome === 'refused' && !r.degraded), 'the limit rule that refused')
  t.same(of('client-abort').map((r) => [r.decision, r.outcome]), of('client-abort').map(() => ['allow', 'client_abort']), 'client aborts')
  t.same(of('backend-failure').map((r) => [r.decision, r.outcome, r.status]), of('backend-failure').map(() => ['allow', 'backend_error', 502]), 'backend failures')
  t.ok(of('stream').every((r) => r.tokensIn === 4 && r.tokensOut === 1), 'stream tokens from the usage chunk')
  t.ok(of('allowed').every((r) => r.tokensIn === 3 && r.tokensOut === 2), 'tokens from the usage block')
  t.equal((await verifyDir(gw.rt.audit.dir)).ok, true, 'the chain verifies')
})

t.test('scope cross-border: only interactions whose caller is not where the model is served; 401s are not interactions', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  }, {
    server: { trustedProxies: ['127.0.0.1/32'] },
    geo: { databases: [dbs.city, dbs.anonymousIp] },
    audit: { scope: 'cross-border', ip: 'hashed', ipHashSalt: 'a-secret-salt-for-tests' }
  })
  const call = async (id: string, from: string, key = 'test-key-tier1'): Promise<number> => (await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': from, 'x-request-id': id },
    payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
  })).statusCode
  t.equal(await call('domestic', ip('us-california')), 200)
  t.equal(await call('abroad', ip('germany-us-registered')), 200)
  t.equal(await call('unknown-place', ip('unknown-v4')), 200)
  await call('hosting-us', ip('hosting-us'))
  t.equal(await call('no-key', ip('germany-us-registered'), 'not-a-key'), 401)
  await gw.rt.audit.flush()
  const recs: InteractionRecord[] = []
  for await (const { record } of readRecords(gw.rt.audit.dir)) if (record.kind === 'interaction') recs.push(record)
  t.same(recs.map((r) => r.requestId).sort(), ['abroad', 'hosting-us', 'unknown-place'], 'US caller of a US model: not crossing; unknown place and anonymizers: crossing; 401: not an interaction')
  for (const r of recs) {
    t.match(r.ip, /^hmac-sha256:[0-9a-f]{64}$/, 'ip hashed')
    t.equal(r.crossBorder, true)
  }
  t.same(recs.find((r) => r.requestId === 'hosting-us')?.anonymizer, ['hosting'])
})

t.test('policy.mode shadow: a refusal that was not enforced is recorded as such', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  }, {
    server: { trustedProxies: ['127.0.0.1/32'] },
    geo: { databases: [dbs.city, dbs.anonymousIp] },
    policy: { mode: 'shadow' }
  })
  const res = await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { authorization: 'Bearer test-key-tier1', 'x-forwarded-for': ip('iran'), 'x-request-id': 'shadowed' },
    payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
  })
  t.equal(res.statusCode, 200, 'forwarded')
  await gw.rt.audit.flush()
  const recs: InteractionRecord[] = []
  for await (const { record } of readRecords(gw.rt.audit.dir)) if (record.kind === 'interaction') recs.push(record)
  t.equal(recs.length, 1)
  const r = recs[0]
  t.equal(r?.decision, 'allow')
  t.equal(r?.shadow, true)
  t.match(r?.rule ?? '', /location|embargo/, 'the rule that would have refused')
  t.equal(r?.country, 'IR')
})

t.test('Redis outage: decisions taken without Redis are marked degraded, and nothing goes unrecorded', async (t) => {
  const redis = await startRedisServer()
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
  const gw = await buildTestGateway(baseConfig(up.url, {
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat'], limits: { requestsPerMinute: 1000 }, failMode: 'open' },
      tier2: { models: ['llama-*'], capabilities: ['chat'], limits: { requestsPerMinute: 1000 }, failMode: 'closed' },
      embargoed: { deny: true }
    },
    redis: { url: redis.url, keyPrefix: uniquePrefix('audit'), commandTimeoutMs: 100 },
    audit: { scope: 'all' }
  }))
  t.teardown(async () => { await gw.close(); await up.close(); await redis.stop() })
  const call = async (id: string, key: string): Promise<number> => (await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { authorization: `Bearer ${key}`, 'x-request-id': id },
    payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
  })).statusCode
  // A cold first command on a loaded machine can overrun the 100 ms timeout: wait until Redis answers.
  let warm = 0
  while (await call(`warm-${warm}`, 'test-key-tier2') !== 200 && warm < 100) warm++
  await redis.stop()
  t.equal(await call('open-1', 'test-key-tier1'), 200, 'fail open: served')
  t.equal(await call('closed-1', 'test-key-tier2'), 503, 'fail closed: 503')
  await gw.rt.audit.flush()
  const recs = new Map<string, InteractionRecord>()
  for await (const { record } of readRecords(gw.rt.audit.dir)) if (record.kind === 'interaction') recs.set(record.requestId, record)
  t.equal(recs.size, warm + 3, 'every request recorded')
  t.same([recs.get('open-1')?.decision, recs.get('open-1')?.degraded], ['allow', true])
  t.same([recs.get('closed-1')?.decision, recs.get('closed-1')?.status, recs.get('closed-1')?.degraded, recs.get('closed-1')?.rule], ['deny', 503, true, 'limit:store-unavailable'])
  t.equal(recs.get(`warm-${warm}`)?.degraded, false)
})
