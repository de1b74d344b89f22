import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream, gatewayWithUpstream } from '../helpers/gateway.js'
import { listen } from '../helpers/forward.js'

/** A multipart body exactly as fetch (undici) serialises a FormData, with its Content-Type. */
async function encode (form: FormData): Promise<{ body: Buffer, type: string }> {
  const r = new Response(form)
  return { body: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type') ?? '' }
}

t.test('an upload (file first, as SDKs send it) is routed to its model\'s backend and arrives byte for byte', async (t) => {
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"text":"hello"}') })
  const other = await startUpstream((_req, res) => { res.end('wrong backend') })
  const gw = await buildTestGateway(baseConfig(other.url, {
    backends: { gpu: { url: other.url, region: 'US' }, asr: { url: up.url, region: 'US' } },
    models: { 'whisper-large': { backend: 'asr' }, 'llama-3.1-8b': { backend: 'gpu' } },
    tiers: { tier1: { models: ['*'], capabilities: ['chat', 'audio'] }, tier2: { models: [] }, embargoed: { deny: true } }
  }))
  t.teardown(async () => { await gw.close(); await up.close(); await other.close() })
  const base = await listen(gw)
  const form = new FormData()
  form.append('file', new Blob([Buffer.alloc(200_000, 7)]), 'speech.wav')
  form.append('model', 'whisper-large')
  const { body, type } = await encode(form)
  const res = await fetch(base + '/v1/audio/transcriptions', { method: 'POST', headers: { authorization: 'Bearer test-key-tier1', 'content-type': type }, body })
  t.equal(res.status, 200)
  t.same(await res.json(), { text: 'hello' })
  const got = up.requests[0]
  t.equal(got?.headers['content-type'], type)
  t.equal(got?.headers['content-length'], String(body.length))
  t.ok(Buffer.from(got?.body ?? '', 'utf8').length > 0)
  t.equal(got?.body, body.toString('utf8'), 'the body is forwarded untouched')
  t.equal(other.requests.length, 0)
})

t.test('a chunked upload (no Content-Length) over the body limit is refused with 413', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.end('{}') }, {
    server: { bodyLimit: 4096 },
    models: { 'whisper-large': { backend: 'gpu' } },
    tiers: { tier1: { models: ['*'], capabilities: ['audio'] }, tier2: { models: [] }, embargoed: { deny: true } }
  })
  const base = await listen(gw)
  const form = new FormData()
  form.append('file', new Blob([Buffer.alloc(10_000, 7)]), 'speech.wav')
  form.append('model', 'whisper-large')
  const { body, type } = await encode(form)
  const chunked = new ReadableStream<Uint8Array>({
    start (c) { for (let i = 0; i < body.length; i += 1000) c.enqueue(body.subarray(i, i + 1000)); c.close() }
  })
  const res = await fetch(base + '/v1/audio/transcriptions', { method: 'POST', headers: { authorization: 'Bearer test-key-tier1', 'content-type': type }, body: chunked, duplex: 'half' } as RequestInit)
  t.equal(res.status, 413)
  t.equal(((await res.json()) as { error: { code: string } }).error.code, 'request_too_large')
  t.equal(up.requests.length, 0)
})
