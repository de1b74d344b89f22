/*
 * Deep JSON is a 400 before any stage runs: no backend asked, no audit record, no 500. The bound is
 * MAX_JSON_DEPTH (64) levels of arrays and objects; brackets inside strings do not count.
 */
import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'
import { observe } from '../helpers/forward.js'
import { MAX_JSON_DEPTH, scanJson } from '../../src/core/json-depth.js'

const jsonDepthOver = (text: string, max: number): boolean => scanJson(text, max).tooDeep

const nest = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

t.test('scanJson: depth', async (t) => {
  t.notOk(jsonDepthOver('{"a":[1,{"b":2}]}', 3))
  t.ok(jsonDepthOver('{"a":[1,{"b":2}]}', 2))
  t.notOk(jsonDepthOver(`{"s":"${'['.repeat(1000)}"}`, 2), 'brackets in strings are text')
  t.notOk(jsonDepthOver('{"s":"\\"[[[[["}', 1), 'an escaped quote does not end the string')
  t.notOk(jsonDepthOver('[]'.repeat(10000), 1), 'siblings are not depth')
  t.notOk(jsonDepthOver('{"s":"a\\\\"}', 1), 'a backslash that is itself escaped does not escape the quote after it')
  t.ok(jsonDepthOver('{"s":"a\\\\","t":[[1]]}', 2), '…so what follows that quote is structure again')
})

t.test('scanJson: plain keys', async (t) => {
  const plain = (s: string): boolean => scanJson(s, MAX_JSON_DEPTH).plainKeys
  t.ok(plain('{"model":"m","messages":[{"role":"user","content":"model"},{"role":"user","content":"x"}]}'), 'the same key in sibling objects, and a value equal to a key')
  t.ok(plain('{"a":["k","k"],"b":{"a":1}}'), 'strings in an array are no keys; a nested object has keys of its own')
  t.ok(plain('{"s":"\\"model\\": 1","model":"m"}'), 'a key-like text inside a string value is text')
  t.notOk(plain('{"model":"a","model":"b"}'), 'a key twice')
  t.notOk(plain('{"m":[{"role":"u","role":"v"}]}'), 'a key twice in a nested object')
  t.notOk(plain('{"a" : 1, "a"\n: 2}'), 'a key twice, with whitespace before the colon')
  t.notOk(plain('{"mod\\u0065l":"a"}'), 'an escape in a key')
  t.notOk(plain('{"a":"unterminated'), 'an unterminated string')
  t.same(scanJson('[[[1]]]', 2), { tooDeep: true, plainKeys: false })
})

t.test('a body nested past the bound is a 400, nothing forwarded, nothing audited', async (t) => {
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}') })
  const gw = await buildTestGateway(baseConfig(up.url, { audit: { scope: 'all' } }))
  const seen = observe(gw)
  t.teardown(async () => { await gw.close(); await up.close() })
  const send = async (extra: string): Promise<{ status: number, code: string | null }> => {
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { authorization: 'Bearer test-key-tier1', 'content-type': 'application/json' },
      payload: `{"model":"llama-3.1-8b","messages":[{"role":"user","content":"hi"}],"metadata":${extra}}`
    })
    return { status: res.statusCode, code: res.statusCode === 200 ? null : (res.json() as { error: { code: string } }).error.code }
  }
  for (const depth of [100_000, 10_000, MAX_JSON_DEPTH]) {
    // the body object itself is one level
    t.same(await send(nest(depth)), { status: 400, code: 'invalid_request' }, `${depth} levels`)
  }
  t.equal(up.requests.length, 0, 'the backend was never asked')
  t.same(await send(nest(MAX_JSON_DEPTH - 1)), { status: 200, code: null }, `${MAX_JSON_DEPTH} levels in all are accepted`)
  t.same(await send(`"${'['.repeat(100_000)}"`), { status: 200, code: null }, 'brackets inside a string are not nesting')
  t.equal(up.requests.length, 2)
  await seen.auditedCount(2)
  t.equal(seen.audited.length, 2, 'only the forwarded ones are audited')
  t.ok(seen.audited.every((e) => e.decision === 'allow' && e.outcome === 'ok'))
  const proto = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { authorization: 'Bearer test-key-tier1', 'content-type': 'application/json' }, payload: '{"model":"llama-3.1-8b","__proto__":{"x":1}}' })
  t.equal(proto.statusCode, 400, 'prototype-poisoning keys are still refused by the JSON parser')
})

t.test('the admin plane bounds JSON depth too', async (t) => {
  const gw = await buildTestGateway(baseConfig())
  t.teardown(async () => { await gw.close() })
  const res = await gw.admin.inject({ method: 'PUT', url: '/admin/tiers/deep', headers: { authorization: 'Bearer test-admin', 'content-type': 'application/json' }, payload: `{"models":${nest(100_000)}}` })
  t.equal(res.statusCode, 400, res.body.slice(0, 200))
  t.equal(gw.rt.policy.snapshot().tiers.has('deep'), false)
})
