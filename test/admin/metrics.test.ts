import t from 'tap'
import { spawnSync } from 'node:child_process'
import { buildTestGateway, baseConfig, startUpstream, type TestGateway, gatewayWithUpstream } from '../helpers/gateway.js'
import { testRedis, uniquePrefix, deletePrefix, waitFor } from '../helpers/ops.js'

const AUDITOR = { authorization: 'Bearer test-auditor' }

interface Sample { name: string, labels: Record<string, string>, value: number }

/** Prometheus text exposition format 0.0.4, strictly: every sample belongs to a declared family. */
function parseExposition (text: string): { types: Map<string, string>, samples: Sample[] } {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/
  const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y
  text.split('\n').forEach((line, i) => {
    if (line === '') return
    if (line.startsWith('# HELP ')) return
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ')
      if (name === undefined || type === undefined || !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type)) throw new Error(`line ${i + 1}: bad TYPE: ${line}`)
      types.set(name, type)
      return
    }
    if (line.startsWith('#')) return
    const m = SAMPLE.exec(line)
    if (m === null) throw new Error(`line ${i + 1}: not a sample: ${line}`)
    const [, name = '', labelText = '', valueText = ''] = m
    const labels: Record<string, string> = {}
    LABEL.lastIndex = 0
    while (LABEL.lastIndex < labelText.length) {
      const l = LABEL.exec(labelText)
      if (l === null) throw new Error(`line ${i + 1}: bad labels: ${labelText}`)
      labels[l[1] ?? ''] = (l[2] ?? '').replace(/\\(.)/g, (_m, c: string) => c === 'n' ? '\n' : c)
    }
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText)
    // Go's ParseFloat (what Prometheus uses) reads NaN in any case; prom-client writes "Nan".
    if (Number.isNaN(value) && valueText.toLowerCase() !== 'nan') throw new Error(`line ${i + 1}: bad value ${valueText}`)
    const family = [name, name.replace(/_(bucket|sum|count|total|created)$/, '')].find((n) => types.has(n))
    if (family === undefined) throw new Error(`line ${i + 1}: sample ${name} has no # TYPE`)
    samples.push({ name, labels, value })
  })
  return { types, samples }
}

function sum (samples: Sample[], name: string, match: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0)
}

async function scrape (gw: TestGateway): Promise<Sample[]> {
  const res = await gw.admin.inject({ method: 'GET', url: '/metrics', headers: AUDITOR })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return parseExposition(res.body).samples
}

const US = '8.8.8.8'
const GB = '81.2.69.142'
const IR = '5.160.0.1'

t.test('/metrics parses as Prometheus text and moves when traffic flows', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } }))
  })

  const res = await gw.admin.inject({ method: 'GET', url: '/metrics', headers: AUDITOR })
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const { types } = parseExposition(res.body)
  for (const [name, type] of [['geogate_requests_total', 'counter'], ['geogate_gateway_added_seconds', 'histogram'], ['geogate_upstream_seconds', 'histogram'],
    ['geogate_time_to_first_token_seconds', 'histogram'], ['geogate_tokens_total', 'counter'], ['geogate_limiter_decisions_total', 'counter'],
    ['geogate_redis_errors_total', 'counter'], ['geogate_limiter_degraded_total', 'counter'], ['geogate_geodb_age_days', 'gauge'],
    ['geogate_geo_unknown_location_total', 'counter'], ['geogate_audit_queue_depth', 'gauge'], ['geogate_audit_writer_lag_seconds', 'gauge'],
    ['geogate_process_nodejs_eventloop_lag_seconds', 'gauge'], ['geogate_key_country_mismatch_total', 'counter'], ['geogate_key_new_country_total', 'counter'],
    ['geogate_cross_border_requests_total', 'counter'], ['geogate_anonymizer_requests_total', 'counter']]) {
    t.equal(types.get(String(name).replace(/_total$/, '')) ?? types.get(String(name)), type, `${String(name)} is a ${String(type)}`)
  }
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: res.body, encoding: 'utf8' })
  t.equal(promtool.error, undefined, 'promtool runs (apt-get install prometheus; see README, Quick start)')
  // Exit 1 is a parse error; 3 is lint advice, which is allowed only for prom-client's own default metrics.
  t.not(promtool.status, 1, 'promtool parses it')
  t.notMatch(promtool.stdout + promtool.stderr, /error while linting/, 'promtool parses it')
  // geogate_geodb_age_days is in days on purpose (database age is read in days, geo.maxAgeDays); nothing else may draw advice.
  const advice = (promtool.stdout + promtool.stderr).split('\n')
    .filter((l) => l.startsWith('geogate_') && !l.startsWith('geogate_process_') && !l.startsWith('geogate_geodb_age_days use base unit'))
  t.same(advice, [], 'no lint advice on our own metrics')

  const before = await scrape(gw)
  const call = async (ip: string, key: string, model: string): Promise<number> => (await gw.app.inject({
    method: 'POST', url: '/v1/chat/completions', remoteAddress: ip, headers: { authorization: `Bearer ${key}` },
    payload: { model, messages: [{ role: 'user', content: 'hi' }] }
  })).statusCode
  const statuses = [
    await call(US, 'test-key-tier1', 'llama-3.1-8b'),
    await call(US, 'test-key-tier1', 'llama-3.1-8b'),
    await call(GB, 'test-key-tier1', 'llama-3.1-8b'),
    await call(GB, 'test-key-tier1', 'llama-3.1-8b'),
    await call(IR, 'test-key-tier2', 'llama-3.1-8b'),
    await call('127.0.0.1', 'test-key-tier2', 'gpt-unheard-of'),
    await call(US, 'not-a-key', 'llama-3.1-8b')
  ]
  t.equal(statuses[0], 200)
  t.equal(statuses[6], 401)
  const after = await scrape(gw)
  const delta = (name: string, match: Record<string, string> = {}): number => sum(after, name, match) - sum(before, name, match)

  t.equal(delta('geogate_requests_total'), statuses.length, 'every request counted once')
  for (const code of new Set(statuses)) {
    t.equal(delta('geogate_requests_total', { status: String(code) }), statuses.filter((s) => s === code).length, `status ${code}`)
  }
  t.ok(delta('geogate_requests_total', { decision: 'allow', model: 'llama-3.1-8b', status: '200' }) >= 2, 'allowed llama requests')
  t.equal(delta('geogate_requests_total', { decision: 'deny', rule: 'identity', status: '401' }), 1, 'the unknown key')
  t.equal(delta('geogate_requests_total', { model: 'other' }), 1, 'an unconfigured model is "other"')
  t.notOk(after.some((s) => Object.values(s.labels).some((v) => v.includes('gpt-unheard-of') || v.includes('not-a-key') || v.includes('8.8.8.8'))), 'no caller-chosen label values')
  t.equal(delta('geogate_key_country_mismatch_total', { key_id: 'k1' }), 2, 'k1 declares US and was used twice from GB')
  t.equal(delta('geogate_key_new_country_total', { key_id: 'k1' }), 1, 'GB is new for k1 once; US is its declared country')
  t.equal(delta('geogate_key_new_country_total', { key_id: 'k2' }), 1, 'IR for k2 (no declared country)')
  t.equal(delta('geogate_cross_border_requests_total', { country: 'IR' }), 1, 'IR caller, US backend: a crossing')
  t.equal(delta('geogate_cross_border_requests_total', { country: 'GB' }), 2)
  t.equal(delta('geogate_cross_border_requests_total', { country: 'US' }), 0, 'US to US does not cross')
  t.ok(delta('geogate_geo_unknown_location_total') >= 1, 'loopback has no location')
  t.ok(sum(after, 'geogate_geodb_age_days') > 0, 'GeoIP database age reported')
  t.ok(after.some((s) => s.name === 'geogate_process_nodejs_eventloop_lag_seconds'), 'event-loop lag')
  t.equal(sum(after, 'geogate_in_flight_requests'), 0, 'nothing left in flight')
  t.ok(delta('geogate_limiter_decisions_total', { result: 'allowed' }) >= 2, 'limiter decisions counted')
})

t.test('a key seen from a new country counts once across replicas sharing Redis', async (t) => {
  const redis = await testRedis()
  const prefix = uniquePrefix('seen')
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{}') })
  const cfg = baseConfig(up.url, { redis: { url: redis.url, keyPrefix: prefix } })
  const a = await buildTestGateway(cfg)
  const b = await buildTestGateway(cfg)
  t.teardown(async () => { await a.close(); await b.close(); await up.close(); await deletePrefix(redis.url, prefix); await redis.stop() })
  const call = async (gw: TestGateway, ip: string): Promise<void> => {
    await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: ip, headers: { authorization: 'Bearer test-key-tier1' }, payload: { model: 'llama-3.1-8b' } })
  }
  const counted = async (gw: TestGateway): Promise<number> => sum(await scrape(gw), 'geogate_key_new_country_total', { key_id: 'k1' })
  // The first-sighting write is best effort (a failed one is retried by the next request), so keep calling.
  await waitFor(async () => { await call(a, '85.214.132.117'); return await counted(a) === 1 }, 5000, 'the first sighting (DE) on A')
  await call(b, '85.214.132.117')
  // Replies on one connection come in order: once B has counted AU, it has had Redis's answer about DE too.
  await waitFor(async () => { await call(b, '1.1.1.1'); return await counted(b) >= 1 }, 5000, 'the first sighting (AU) on B')
  t.equal(await counted(b), 1, 'B counted AU only, not DE which A saw first')
  t.equal(await counted(a), 1)
})
