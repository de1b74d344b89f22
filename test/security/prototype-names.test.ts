/*
 * Names from a request or an admin call are looked up in Maps, and names that Object.prototype answers for are
 * refused wherever names enter: `"model": "toString"` is an unknown model (404, never charged, never labelled,
 * never audited allow), `PUT /admin/tiers/__proto__` is a 400, `GET /admin/tiers/toString` a 404, and a config
 * file naming a tier `constructor` does not load.
 */
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'
import { observe } from '../helpers/forward.js'
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js'
import { RESERVED_NAMES } from '../../src/core/names.js'

const ADMIN = { authorization: 'Bearer test-admin' }
const NAMES = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', '__defineGetter__', 'prototype']

t.test('the reserved list covers every name Object.prototype answers for', async (t) => {
  for (const n of Object.getOwnPropertyNames(Object.prototype)) t.ok(RESERVED_NAMES.includes(n), n)
})

t.test('a reserved model name is an unknown model: 404, not forwarded, not charged, not labelled, audited deny', async (t) => {
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}') })
  const cfg = baseConfig(up.url, { audit: { scope: 'all' } })
  const tiers = cfg.tiers as Record<string, Record<string, unknown>>
  tiers.tier1 = { ...tiers.tier1, limits: { requestsPerMinute: 100, tokensPerMinute: 100000 } }
  const gw = await buildTestGateway(cfg)
  const seen = observe(gw)
  t.teardown(async () => { await gw.close(); await up.close() })
  for (const model of NAMES) {
    // a JSON body with a "__proto__" key is refused by Fastify's parser (400); as a value it is a model name
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { authorization: 'Bearer test-key-tier1', 'content-type': 'application/json' },
      payload: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] })
    })
    t.equal(res.statusCode, 404, `${model}: 404`)
    t.equal(res.json().error.code, 'model_not_found', `${model}: model_not_found`)
    t.notOk(Object.keys(res.headers).some((h) => h.startsWith('x-ratelimit')), `${model}: not charged to limits (no rate-limit headers)`)
  }
  t.equal(up.requests.length, 0, 'the backend never saw them')
  await seen.auditedCount(NAMES.length)
  t.same(seen.audited.map((e) => [e.model, e.decision, e.rule]), NAMES.map((m) => [m, 'deny', 'model:unknown']), 'audited as refused, model:unknown')

  const ok = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { authorization: 'Bearer test-key-tier1' }, payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] } })
  t.equal(ok.statusCode, 200)
  const remaining = Object.entries(ok.headers).find(([h]) => h.startsWith('x-ratelimit-remaining') && h.includes('request'))
  t.equal(remaining?.[1], '99', 'the first charged request: the refused ones took nothing')

  const metrics = await gw.admin.inject({ method: 'GET', url: '/metrics', headers: ADMIN })
  for (const model of NAMES) t.notOk(metrics.body.includes(`model="${model}"`), `${model}: no metric label`)
  t.ok(metrics.body.includes('model="other"'), 'counted as other')

  const one = await gw.app.inject({ method: 'GET', url: '/v1/models/toString', headers: { authorization: 'Bearer test-key-tier1' } })
  t.equal(one.statusCode, 404, 'GET /v1/models/toString')
})

t.test('admin plane: reserved tier and key names are 400 to write, 404 to read', async (t) => {
  const gw = await buildTestGateway(baseConfig())
  t.teardown(async () => { await gw.close() })
  const before = (await gw.admin.inject({ method: 'GET', url: '/admin/tiers', headers: ADMIN })).json() as Record<string, unknown>
  for (const name of NAMES) {
    const put = await gw.admin.inject({ method: 'PUT', url: `/admin/tiers/${name}`, headers: ADMIN, payload: { models: ['*'], capabilities: ['chat'] } })
    t.equal(put.statusCode, 400, `PUT /admin/tiers/${name}: ${put.body}`)
    t.match(put.body, /reserved name|must match/, `${name}: says why`)
    const get = await gw.admin.inject({ method: 'GET', url: `/admin/tiers/${name}`, headers: ADMIN })
    t.equal(get.statusCode, 404, `GET /admin/tiers/${name}`)
    const del = await gw.admin.inject({ method: 'DELETE', url: `/admin/tiers/${name}`, headers: ADMIN })
    t.equal(del.statusCode, 404, `DELETE /admin/tiers/${name}`)
    const key = await gw.admin.inject({ method: 'POST', url: '/admin/keys', headers: ADMIN, payload: { id: name, org: 'O', tier: 'tier1' } })
    t.equal(key.statusCode, 400, `POST /admin/keys id ${name}`)
    const getKey = await gw.admin.inject({ method: 'GET', url: `/admin/keys/${name}`, headers: ADMIN })
    t.equal(getKey.statusCode, 404, `GET /admin/keys/${name}`)
  }
  const after = (await gw.admin.inject({ method: 'GET', url: '/admin/tiers', headers: ADMIN })).json() as Record<string, unknown>
  t.same(after, before, 'the tiers are unchanged')
  t.same([...gw.rt.policy.snapshot().tiers.keys()].sort(), ['embargoed', 'tier1', 'tier2'])
})

t.test('config load: reserved or malformed names of models, tiers, backends, places and keys are errors', async (t) => {
  const bad = (patch: Record<string, unknown>): ConfigError => {
    try {
      // through JSON.parse, so "__proto__" is an own key as a YAML or JSON file makes it
      parseConfig(JSON.parse(JSON.stringify(baseConfig('http://127.0.0.1:9', patch)).replace(/"RESERVED"/g, '"__proto__"')))
    } catch (err) {
      if (err instanceof ConfigError) return err
      throw err
    }
    throw new Error('loaded')
  }
  const base = baseConfig() as { tiers: Record<string, unknown>, models: Record<string, unknown>, backends: Record<string, unknown>, keys: Array<Record<string, unknown>> }
  for (const name of ['toString', 'constructor', 'RESERVED', 'valueOf']) {
    const shown = name === 'RESERVED' ? '__proto__' : name
    t.match(bad({ tiers: { ...base.tiers, [name]: { deny: true } } }).issues, [{ path: `/tiers/${shown}` }], `tier ${shown}`)
    t.match(bad({ models: { ...base.models, [name]: { backend: 'gpu' } } }).issues, [{ path: `/models/${shown}` }], `model ${shown}`)
    t.match(bad({ backends: { ...base.backends, [name]: { url: 'http://127.0.0.1:9', region: 'US' } } }).issues, [{ path: `/backends/${shown}` }], `backend ${shown}`)
    t.match(bad({ keys: [...base.keys, { ...base.keys[0], id: name }] }).issues, [{ path: '/keys/2/id' }], `key id ${shown}`)
  }
  t.match(bad({ models: { ...base.models, 'llama-3.1-8b': { backend: 'toString' } } }).issues, [{ path: '/models/llama-3.1-8b/backend', message: 'unknown backend "toString"' }], 'a model served by backend toString')
  t.match(bad({ tiers: { ...base.tiers, 'bad name': { deny: true } } }).issues, [{ path: '/tiers/bad name', message: /must match/ }], 'a tier name with a space')
  // the names the shipped configs and OpenAI-style servers use still load
  t.ok(parseConfig(baseConfig('http://127.0.0.1:9', { models: { ...base.models, 'meta-llama/Llama-3.1-8B-Instruct': { backend: 'gpu' }, 'ft:llama-3.1-8b:org::abc123': { backend: 'gpu' } } })))

  const dir = await mkdtemp(join(tmpdir(), 'geogate-names-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'g.yaml')
  await writeFile(file, [
    'backends: { gpu: { url: "http://127.0.0.1:9", region: US } }',
    'models: { m: { backend: gpu } }',
    'locations: { default: t1, unknown: t1 }',
    'tiers:',
    '  t1: { models: ["*"] }',
    '  __proto__: { deny: true }',
    ''
  ].join('\n'))
  const err = await loadConfig(file, {}).then(() => null, (e: unknown) => e)
  t.ok(err instanceof ConfigError, 'YAML `__proto__:` is refused, not silently dropped')
  t.match((err as ConfigError).issues, [{ path: '/tiers/__proto__', message: 'name "__proto__" is a reserved name' }])
})
