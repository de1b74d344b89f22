/*
 * The benchmark's cheap backend: a fixed OpenAI chat completion, or, when the body asks for `"stream":true`, an SSE
 * stream of max_tokens deltas (default 10) ITL_MS apart (the first at once), a usage chunk and [DONE].
 *   node mock-backend.mjs PORT [ITL_MS]
 * Plain JavaScript so it runs on bare node, like the proxies it is measured through.
 */
import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? 0)
const itlMs = Number(process.argv[3] ?? 100)
const MAX_TOKENS = /"max_tokens":(\d+)/

const COMPLETION = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1767225600,
  model: 'bench',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the benchmark backend.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 }
})
const body = Buffer.from(COMPLETION)
const jsonHeaders = { 'content-type': 'application/json', 'content-length': String(body.length) }
const sseHeaders = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }
const delta = (i) => `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"model":"bench","choices":[{"index":0,"delta":{"content":"t${i} "},"finish_reason":null}]}\n\n`
const last = (chunks) => 'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"model":"bench","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":' + chunks + ',"total_tokens":' + (9 + chunks) + '}}\n\ndata: [DONE]\n\n'

function stream (res, chunks) {
  res.writeHead(200, sseHeaders)
  let i = 0
  const tick = () => {
    if (res.destroyed) return
    if (i < chunks) {
      res.write(delta(i++))
      setTimeout(tick, itlMs)
    } else {
      res.end(last(chunks))
    }
  }
  tick()
}

const server = createServer((req, res) => {
  let text = ''
  req.setEncoding('utf8')
  req.on('data', (c) => { if (text.length < 4096) text += c })
  req.on('end', () => {
    if (text.includes('"stream":true')) stream(res, Number(MAX_TOKENS.exec(text)?.[1] ?? 10))
    else res.writeHead(200, jsonHeaders).end(body)
  })
})
server.keepAliveTimeout = 120_000
server.listen(port, '127.0.0.1', () => { process.stdout.write(`listening ${server.address().port}\n`) })
process.on('SIGTERM', () => { server.closeAllConnections(); server.close(() => process.exit(0)) })
