import t from 'tap'
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import { buildTestGateway, baseConfig, startUpstream, gatewayWithUpstream as gatewayOn } from '../helpers/gateway.js'
import { observe, listen, send, open, chat, TIER1, sseData, firstChunk } from '../helpers/forward.js'

// These tests call over loopback, an internal location that audit.scope cross-border does not keep: keep every interaction.
const gatewayWithUpstream: typeof gatewayOn = async (t, handler, patch = {}, overrides = {}) =>
  await gatewayOn(t, handler, (url) => ({ audit: { scope: 'all' }, ...(typeof patch === 'function' ? patch(url) : patch) }), overrides)

const USAGE = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 }

function sseChunk (content: string, usage: unknown = null): string {
  return `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }], usage })}\n\n`
}
const USAGE_CHUNK = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [], usage: USAGE })}\n\n`

t.test('streamed chunks reach the client one by one, as the backend flushes them', async (t) => {
  // The backend sends the next chunk only after the client has received the previous one: a gateway that
  // buffered would deadlock here. Arrival times are recorded too, and must follow the backend's pace.
  const N = 5
  const GAP_MS = 40
  let next: (() => void) | null = null
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    let i = 0
    const write = (): void => {
      if (i === N) { res.end(USAGE_CHUNK + 'data: [DONE]\n\n'); return }
      res.write(sseChunk(`t${i++}`))
      next = () => { setTimeout(write, GAP_MS) }
    }
    write()
  })
  const seen = observe(gw)
  const base = await listen(gw)
  const res = await open(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b', { stream: true }) })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/event-stream/)
  const arrivals: number[] = []
  let text = ''
  for await (const c of res) {
    const s = (c as Buffer).toString('utf8')
    text += s
    if (s.includes('"content":"t')) {
      arrivals.push(performance.now())
      const n = next as (() => void) | null
      next = null
      n?.()
    }
  }
  t.equal(arrivals.length, N, 'each content chunk arrived in a read of its own')
  for (let i = 1; i < arrivals.length; i++) {
    t.ok((arrivals[i] ?? 0) - (arrivals[i - 1] ?? 0) >= GAP_MS - 5, `chunk ${i} arrived after the backend's gap, not batched`)
  }
  const data = sseData(text)
  t.same(data.map((d) => (d.choices as Array<{ delta: { content: string } }>)[0]?.delta.content), ['t0', 't1', 't2', 't3', 't4'])
  t.notOk(data.some((d) => Array.isArray(d.choices) && d.choices.length === 0), 'the usage chunk the gateway asked for is not passed to a client that did not')
  t.ok(text.endsWith('data: [DONE]\n\n'))
  const sent = JSON.parse(up.requests[0]?.body ?? '{}') as Record<string, unknown>
  t.same(sent.stream_options, { include_usage: true }, 'include_usage requested upstream')
  await seen.auditedCount(1)
  t.same(seen.requests[0]?.ctx.usage, { tokensIn: 7, tokensOut: 3 }, 'usage from the final usage chunk')
  t.equal(seen.audited[0]?.tokensOut, 3)
  t.equal(seen.requests[0]?.ctx.upstreamStatus, 200)
  t.same(seen.requests[0]?.ctx.backend, { name: 'gpu', region: 'US' })
})

t.test('a client that asked for usage gets the usage chunk, and its own stream_options are kept', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end(sseChunk('a') + USAGE_CHUNK + 'data: [DONE]\n\n')
  })
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b', { stream: true, stream_options: { include_usage: true, continuous_usage_stats: false } }) })
  const data = sseData(r.text)
  t.same(data.at(-1)?.usage, USAGE)
  t.same((JSON.parse(up.requests[0]?.body ?? '{}') as Record<string, unknown>).stream_options, { include_usage: true, continuous_usage_stats: false })
})

t.test('non-streamed JSON: body passes through (with the caller\'s model name), usage read, model renamed upstream, key swapped', async (t) => {
  const answer = JSON.stringify({ id: 'x', object: 'chat.completion', model: 'meta/llama', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' } }], usage: USAGE })
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'backend-own-id' })
    res.end(answer)
  }, (url) => ({
    backends: { gpu: { url: url + '/v1', region: 'US', apiKey: 'backend-secret' } },
    models: { 'llama-3.1-8b': { backend: 'gpu', upstreamModel: 'meta/llama' } }
  }))
  const seen = observe(gw)
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: { ...TIER1, 'x-request-id': 'trace-123' }, body: chat('llama-3.1-8b', { max_tokens: 5 }) })
  t.equal(r.status, 200)
  t.equal(r.text, answer.replace('"model":"meta/llama"', '"model":"llama-3.1-8b"'), 'byte for byte, but the model is the caller\'s name')
  t.equal(r.headers['x-request-id'], 'trace-123', 'the caller\'s well-formed request id is kept')
  const u = up.requests[0]
  t.equal(u?.url, '/v1/chat/completions', 'a base URL ending in /v1 is not doubled')
  t.equal(u?.headers.authorization, 'Bearer backend-secret')
  t.equal(u?.headers['x-request-id'], 'trace-123')
  const sent = JSON.parse(u?.body ?? '{}') as Record<string, unknown>
  t.equal(sent.model, 'meta/llama')
  t.equal(sent.stream_options, undefined, 'no stream_options on a non-stream request')
  await seen.auditedCount(1)
  t.same(seen.requests[0]?.ctx.usage, { tokensIn: 7, tokensOut: 3 })
})

t.test('usage of a large JSON answer is found in its tail', async (t) => {
  const data = Array.from({ length: 3000 }, (_, i) => ({ object: 'embedding', index: i, embedding: Array.from({ length: 64 }, () => 0.123456) }))
  const answer = JSON.stringify({ object: 'list', data, model: 'e', usage: { prompt_tokens: 3000, total_tokens: 3000 } })
  t.ok(answer.length > 1024 * 1024)
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(answer) })
  const seen = observe(gw)
  const base = await listen(gw)
  const r = await send(base, '/v1/embeddings', { headers: TIER1, body: JSON.stringify({ model: 'llama-3.1-8b', input: 'x' }) })
  t.equal(r.text.length, answer.length)
  await seen.auditedCount(1)
  t.same(seen.requests[0]?.ctx.usage, { tokensIn: 3000, tokensOut: 0 })
})

t.test('hop-by-hop headers, those named in Connection, and caller credentials never reach the backend', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', connection: 'x-up-hop', 'x-up-hop': 'secret', 'keep-alive': 'timeout=5', 'x-up-kept': 'yes' })
    res.end('{}')
  }, (url) => ({ backends: { gpu: { url: url, region: 'US', apiKey: 'backend-secret' } } }))
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', {
    headers: {
      ...TIER1,
      'x-api-key': 'test-key-tier1',
      // The caller names headers the gateway itself adds, hoping to have them stripped (reply-from's bug).
      connection: 'keep-alive, x-drop-me, authorization, x-request-id',
      'x-drop-me': 'secret',
      'keep-alive': 'timeout=1',
      'proxy-authorization': 'Basic abc',
      'proxy-connection': 'keep-alive',
      te: 'trailers',
      trailer: 'x-foo',
      cookie: 'session=1',
      'x-forwarded-for': '203.0.113.9',
      forwarded: 'for=203.0.113.9',
      'x-kept': 'yes'
    },
    body: chat('llama-3.1-8b')
  })
  t.equal(r.status, 200)
  const h = up.requests[0]?.headers ?? {}
  for (const name of ['x-drop-me', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'cookie', 'x-api-key', 'x-forwarded-for', 'forwarded']) {
    t.equal(h[name], undefined, `${name} stripped`)
  }
  t.equal(h.authorization, 'Bearer backend-secret', 'the backend key, never the caller\'s, even when the caller names authorization in Connection')
  t.ok(typeof h['x-request-id'] === 'string' && h['x-request-id'] === r.headers['x-request-id'], 'x-request-id still sent upstream')
  t.equal(h['x-kept'], 'yes')
  t.equal(h['accept-encoding'], 'identity')
  t.equal(r.headers['x-up-hop'], undefined, 'a response header the backend named in Connection is stripped')
  t.equal(r.headers['keep-alive']?.includes('timeout=5') ?? false, false, 'the backend\'s keep-alive is not passed on')
  t.equal(r.headers['x-up-kept'], 'yes')
})

t.test('a client that disconnects cancels the upstream request, and the interaction is audited once', async (t) => {
  let upstreamClosed: Promise<unknown> | null = null
  const { up, gw } = await gatewayWithUpstream(t, (_req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(sseChunk('first'))
    upstreamClosed = once(res, 'close')
    // never ends on its own: only the gateway giving up closes it
  })
  const seen = observe(gw)
  const base = await listen(gw)
  const res = await open(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b', { stream: true }) })
  t.match(await firstChunk(res), /first/)
  res.destroy()
  await upstreamClosed
  t.pass('the backend saw its request closed')
  await seen.auditedCount(1)
  const ctx = seen.requests[0]?.ctx
  t.equal(ctx?.outcome, 'client_abort')
  t.same(ctx?.usage, { tokensIn: ctx?.shape?.promptTokens, tokensOut: 1, estimated: true }, 'what streamed before the hang-up is counted')
  t.equal(seen.audited.length, 1)
  t.equal(gw.rt.backends.inFlight, 0)
})

t.test('a client that disconnects while the backend is still in prefill cancels it too', async (t) => {
  let upstreamClosed: Promise<unknown> | null = null
  let arrived: () => void = () => {}
  const reached = new Promise<void>((resolve) => { arrived = resolve })
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { upstreamClosed = once(res, 'close'); arrived() })
  const seen = observe(gw)
  const base = await listen(gw)
  const p = open(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b') })
  p.catch(() => {})
  await reached
  seen.requests[0]?.raw.socket.destroy()
  await upstreamClosed
  await seen.auditedCount(1)
  t.equal(seen.requests[0]?.ctx.outcome, 'client_abort')
  t.equal(seen.audited.length, 1)
})

t.test('a JSON answer that says its length is sent as it came, with its length, and its usage read', async (t) => {
  const answer = JSON.stringify({ id: 'x', object: 'chat.completion', model: 'llama-3.1-8b', choices: [{ index: 0, message: { role: 'assistant', content: 'héllo' } }], usage: USAGE })
  const { gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(201, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(answer)), 'x-backend': 'b1' })
    res.end(answer)
  })
  const seen = observe(gw)
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b') })
  t.equal(r.status, 201, 'the backend\'s status')
  t.equal(r.text, answer, 'byte for byte')
  t.equal(r.headers['content-length'], String(Buffer.byteLength(answer)), 'the backend\'s length')
  t.equal(r.headers['x-backend'], 'b1', 'the backend\'s own headers pass')
  await seen.auditedCount(1)
  t.same(seen.requests[0]?.ctx.usage, { tokensIn: 7, tokensOut: 3 })
  t.equal(seen.requests[0]?.ctx.outcome, 'ok')
})

t.test('a JSON answer cut short before its length: 502 as OpenAI-style JSON, audited once as backend_error, no usage', async (t) => {
  const { gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' })
    res.write('{"id":"x","object":"chat.completion","choices":[')
    setImmediate(() => { res.socket?.destroy() })
  })
  const seen = observe(gw)
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b') })
  t.equal(r.status, 502, 'nothing of the torn answer reached the caller: a clean error instead')
  t.equal(JSON.parse(r.text).error.code, 'backend_unavailable')
  await seen.auditedCount(1)
  t.equal(seen.audited.length, 1)
  t.equal(seen.requests[0]?.ctx.outcome, 'backend_error')
  t.equal(seen.audited[0]?.status, 502)
  t.equal(seen.requests[0]?.ctx.usage, null)
})

t.test('backend down → 502, backend silent → 504, as OpenAI-style JSON, each audited once', async (t) => {
  const dead = await startUpstream(() => {})
  const deadUrl = dead.url
  await dead.close()
  const gw = await buildTestGateway(baseConfig(deadUrl, { audit: { scope: 'all' } }))
  const seen = observe(gw)
  t.teardown(gw.close)
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b') })
  t.equal(r.status, 502)
  t.same(JSON.parse(r.text).error.code, 'backend_unavailable')
  t.ok(r.headers['x-request-id'])
  await seen.auditedCount(1)
  t.equal(seen.requests[0]?.ctx.outcome, 'backend_error')
  t.equal(seen.audited[0]?.status, 502)

  const silent = await startUpstream(() => { /* headers never come */ })
  const gw2 = await buildTestGateway(baseConfig(silent.url, { audit: { scope: 'all' }, backends: { gpu: { url: silent.url, region: 'US', headersTimeoutMs: 100 } } }))
  const seen2 = observe(gw2)
  t.teardown(async () => { await gw2.close(); await silent.close() })
  const base2 = await listen(gw2)
  const r2 = await send(base2, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b') })
  t.equal(r2.status, 504)
  t.same(JSON.parse(r2.text).error, { message: 'The model backend did not answer in time: gpu (headers timeout)', type: 'api_error', code: 'backend_timeout', param: null })
  await seen2.auditedCount(1)
  t.equal(seen2.requests[0]?.ctx.outcome, 'backend_error')
})

t.test('a backend that stalls mid-stream: the client gets an error event and the end of the stream', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(sseChunk('partial'))
  }, (url) => ({ backends: { gpu: { url: url, region: 'US', bodyTimeoutMs: 150 } } }))
  const seen = observe(gw)
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b', { stream: true }) })
  t.equal(r.status, 200)
  const data = sseData(r.text)
  t.equal(data.length, 2)
  t.same((data[1] as { error: { code: string } }).error.code, 'backend_timeout')
  await seen.auditedCount(1)
  t.equal(seen.requests[0]?.ctx.outcome, 'backend_error')
  t.equal(seen.audited.length, 1)
})

t.test('a backend that stalls before its first byte: 504 even though headers came', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.flushHeaders() }, (url) => ({ backends: { gpu: { url: url, region: 'US', bodyTimeoutMs: 100 } } }))
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b', { stream: true }) })
  t.equal(r.status, 504)
  t.equal(JSON.parse(r.text).error.code, 'backend_timeout')
})

t.test('body limit: 413 as OpenAI-style JSON, nothing forwarded', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.end('{}') }, { server: { bodyLimit: 2048 } })
  const base = await listen(gw)
  const big = chat('llama-3.1-8b', { padding: 'x'.repeat(4096) })
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: big })
  t.equal(r.status, 413)
  t.equal(JSON.parse(r.text).error.code, 'request_too_large')
  const r2 = await send(base, '/v1/audio/transcriptions', { headers: { authorization: TIER1.authorization, 'content-type': 'multipart/form-data; boundary=x' }, body: Buffer.alloc(4096, 0x61) })
  t.equal(r2.status, 413, 'a raw (multipart) body over the limit is refused from its Content-Length')
  t.equal(JSON.parse(r2.text).error.code, 'request_too_large')
  t.equal(up.requests.length, 0)
})

t.test('backend chosen by model; with several, the one in the caller\'s region', async (t) => {
  const us = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"from":"us"}') })
  const de = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"from":"de"}') })
  const gw = await buildTestGateway(baseConfig(us.url, {
    backends: { us: { url: us.url, region: 'US' }, de: { url: de.url, region: 'DE' } },
    models: { 'llama-3.1-8b': { backend: 'us', backends: ['us', 'de'] }, 'frontier-1': { backend: 'de' } }
  }))
  t.teardown(async () => { await gw.close(); await us.close(); await de.close() })
  t.equal(gw.rt.backends.pick({ backend: 'us', backends: ['us', 'de'], classification: 'EAR99' }, 'DE', [])?.name, 'de')
  t.equal(gw.rt.backends.pick({ backend: 'us', backends: ['us', 'de'], classification: 'EAR99' }, 'FR', [])?.name, 'us', 'no match: the first listed')
  t.equal(gw.rt.backends.pick({ backend: 'us', backends: ['us', 'de'], classification: 'EAR99' }, null, [])?.name, 'us')
  const base = await listen(gw)
  t.equal((await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b') })).text, '{"from":"us"}', 'unknown location: the first')
  t.equal((await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('frontier-1') })).text, '{"from":"de"}')
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('no-such-model') })
  t.equal(r.status, 404)
  t.equal(JSON.parse(r.text).error.code, 'model_not_found')
})

t.test('/v1/models is answered by the gateway from its own model list', async (t) => {
  const gw = await buildTestGateway(baseConfig())
  t.teardown(gw.close)
  const base = await listen(gw)
  const r = await send(base, '/v1/models', { method: 'GET', headers: { authorization: TIER1.authorization } })
  t.equal(r.status, 200)
  const body = JSON.parse(r.text) as { object: string, data: Array<{ id: string }> }
  t.equal(body.object, 'list')
  t.same(body.data.map((m) => m.id).sort(), ['frontier-1', 'llama-3.1-8b'])
})

t.test('a tier\'s output clamp reaches the backend in the forwarded body', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{}') })
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: { ...TIER1, authorization: 'Bearer test-key-tier2' }, body: chat('llama-3.1-8b', { max_tokens: 5000, stream: true }) })
  t.equal(r.status, 200)
  const sent = JSON.parse(up.requests[0]?.body ?? '{}') as Record<string, unknown>
  t.equal(sent.max_tokens, 1024, 'tier2 caps output at 1024')
  t.same(sent.stream_options, { include_usage: true })
})

t.test('a JSON body nothing rewrites reaches the backend byte for byte; one with a key twice, an escaped key or a clamp is re-serialised', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{}') })
  const base = await listen(gw)
  const post = async (body: string, key = 'test-key-tier1'): Promise<string> => {
    const n = up.requests.length
    const r = await send(base, '/v1/chat/completions', { headers: { ...TIER1, authorization: `Bearer ${key}` }, body })
    t.equal(r.status, 200, r.text)
    return up.requests[n]?.body ?? ''
  }
  // spacing, key order and a seed past 2^53 (JSON.parse would round it) survive only if the text itself is sent
  const asSent = '{ "messages": [ {"content": "say \\"hi\\"", "role": "user"} ],\n  "seed": 123456789012345678901, "model": "llama-3.1-8b" }'
  t.equal(await post(asSent), asSent, 'no rename, no stream, no clamp: the caller\'s own bytes')
  const under = '{"model": "llama-3.1-8b", "messages": [], "max_tokens": 100}'
  t.equal(await post(under, 'test-key-tier2'), under, 'a clamp that lowers nothing changes nothing')
  const clamped = JSON.parse(await post(chat('llama-3.1-8b', { max_tokens: 5000 }), 'test-key-tier2')) as Record<string, unknown>
  t.equal(clamped.max_tokens, 1024, 'a clamp that lowers the bound is forwarded')
  // JSON.parse reads the last of two equal keys, some parsers the first: the backend gets the one the policy read
  const twice = await post('{"model":"llama-3.1-8b","messages":[{"role":"user","content":"a","content":"b"}]}')
  t.equal(twice, '{"model":"llama-3.1-8b","messages":[{"role":"user","content":"b"}]}', 'a key given twice: re-serialised, one key')
  const escaped = await post('{"mod\\u0065l":"llama-3.1-8b","messages":[]}')
  t.equal(escaped, '{"model":"llama-3.1-8b","messages":[]}', 'an escaped key is sent as the key JSON.parse read')
  const streamed = JSON.parse(await post(chat('llama-3.1-8b', { stream: true }))) as Record<string, unknown>
  t.same(streamed.stream_options, { include_usage: true }, 'a stream still asks for its usage chunk')
})

t.test('metrics: time to first token, upstream time and tokens are observed per backend and model', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end(sseChunk('a') + USAGE_CHUNK + 'data: [DONE]\n\n')
  })
  const seen = observe(gw)
  const base = await listen(gw)
  await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b', { stream: true }) })
  await gw.rt.backends.drained()
  const text = await gw.rt.metrics.registry.metrics()
  t.match(text, /geogate_time_to_first_token_seconds_count\{backend="gpu"\} 1/)
  t.match(text, /geogate_upstream_seconds_count\{backend="gpu"\} 1/)
  const tokens = text.split('\n').filter((l) => l.startsWith('geogate_tokens_total{') && l.includes('model="llama-3.1-8b"'))
  t.ok(tokens.some((l) => l.includes('direction="in"') && l.endsWith(' 7')), 'prompt tokens')
  t.ok(tokens.some((l) => l.includes('direction="out"') && l.endsWith(' 3')), 'completion tokens')
})
