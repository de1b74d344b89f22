/* The answer's `model` is the name the caller asked for, not the backend's (upstreamModel), streamed or not. */
import t from 'tap'
import { PassThrough } from 'node:stream'
import { gatewayWithUpstream } from '../helpers/gateway.js'
import { listen, send, open, chat, TIER1, sseData } from '../helpers/forward.js'
import { ModelRename } from '../../src/http/forward-model.js'

const UPSTREAM = 'meta-llama/Llama-3.1-8B-Instruct'
const withUpstreamName = { models: { 'llama-3.1-8b': { backend: 'gpu', classification: 'EAR99', upstreamModel: UPSTREAM } } }

t.test('split at every byte, with and without a space after the colon, the name is rewritten; nothing else changes', async (t) => {
  const text = `data: {"id":"a","model":"${UPSTREAM}","x":1}\n\ndata: {"model": "${UPSTREAM}","note":"the model ${UPSTREAM} is"}\n\n`
  const want = text.replace(`"model":"${UPSTREAM}"`, '"model":"llama-3.1-8b"').replace(`"model": "${UPSTREAM}"`, '"model": "llama-3.1-8b"')
  const buf = Buffer.from(text)
  for (let cut = 1; cut < buf.length; cut++) {
    const r = new ModelRename(UPSTREAM, 'llama-3.1-8b')
    const sink = new PassThrough()
    r.pipe(sink)
    const parts: Buffer[] = []
    sink.on('data', (c: Buffer) => { parts.push(c) })
    r.write(buf.subarray(0, cut))
    r.end(buf.subarray(cut))
    await new Promise((resolve) => sink.on('end', resolve))
    const got = Buffer.concat(parts).toString()
    if (got !== want) { t.equal(got, want, `split at ${cut}`); return }
  }
  t.pass(`all ${buf.length - 1} split points give the rewritten text`)
})

t.test('an event is never held back: a chunk ending in a blank line is passed on whole', async (t) => {
  const r = new ModelRename(UPSTREAM, 'llama-3.1-8b')
  const out: string[] = []
  r.on('data', (c: Buffer) => { out.push(c.toString()) })
  r.write(Buffer.from(`data: {"model":"${UPSTREAM}"}\n\n`))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(out, ['data: {"model":"llama-3.1-8b"}\n\n'], 'out at once, before the stream ends')
})

t.test('JSON answer through the gateway: the caller\'s model name, a valid length', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    const body = JSON.stringify({ id: 'c', object: 'chat.completion', model: UPSTREAM, choices: [{ index: 0, message: { role: 'assistant', content: 'hi' } }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }, withUpstreamName)
  const base = await listen(gw)
  const r = await send(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b') })
  t.equal(r.status, 200)
  t.equal((JSON.parse(r.text) as { model: string }).model, 'llama-3.1-8b', 'the name the caller used')
  t.notMatch(r.text, /meta-llama/)
  t.match(JSON.parse(up.requests[0]?.body ?? '{}'), { model: UPSTREAM }, 'the backend was still asked by its own name')
})

t.test('SSE through the gateway: every chunk renamed, and still streamed chunk by chunk', async (t) => {
  let next: (() => void) | null = null
  const { gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    let i = 0
    const write = (): void => {
      if (i === 3) { res.end('data: [DONE]\n\n'); return }
      res.write(`data: ${JSON.stringify({ id: 's', object: 'chat.completion.chunk', model: UPSTREAM, choices: [{ index: 0, delta: { content: `t${i++}` } }] })}\n\n`)
      next = write
    }
    write()
  }, withUpstreamName)
  const base = await listen(gw)
  const res = await open(base, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b', { stream: true }) })
  let text = ''
  let reads = 0
  for await (const c of res) {
    text += (c as Buffer).toString()
    if ((c as Buffer).toString().includes('"content":"t')) {
      reads++
      // the backend writes the next chunk only once this one arrived: a buffering rename would deadlock here
      const n = next as (() => void) | null
      next = null
      n?.()
    }
  }
  t.equal(reads, 3)
  const chunks = sseData(text)
  t.equal(chunks.length, 3)
  t.ok(chunks.every((c) => c.model === 'llama-3.1-8b'), 'every chunk names the caller\'s model')
})
