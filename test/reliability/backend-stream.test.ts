/*
 * The backend dies in the middle of a stream (issue 10, "what held": keep it holding). The caller's stream ends
 * with an SSE error event the OpenAI SDKs raise, and each interaction is recorded once as a backend error.
 * Two ways to die: the backend process SIGKILLed (the kernel closes its sockets), and a connection reset.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import {
  completeness, countingBackend, describe, gatewayConfig, KEY1, readAudit, startGateway, tempDir, writeConfig, type Gateway
} from '../helpers/reliability.js'

/** A backend in a process of its own: prints its port, then each x-request-id it receives; streams until killed. */
const BACKEND = `
const http = require('node:http')
const s = http.createServer((req, res) => {
  process.stdout.write(JSON.stringify({ id: req.headers['x-request-id'] }) + '\\n')
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    const tick = setInterval(() => res.write('data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}\\n\\n'), 20)
    res.on('close', () => clearInterval(tick))
  })
})
s.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: s.address().port }) + '\\n'))
`

interface StreamResult { status: number, text: string, events: unknown[] }

/** A streamed chat completion; `onFirstChunk` fires when the first SSE bytes reach the caller. */
async function stream (base: string, id: string, onFirstChunk: () => void): Promise<StreamResult> {
  const body = JSON.stringify({ model: 'llama-3.1-8b', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  return await new Promise((resolve) => {
    const req = httpRequest(base + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY1}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-request-id': id }
    }, (res) => {
      let text = ''
      let first = true
      const done = (): void => {
        const events = text.split('\n\n').map((b) => b.trim()).filter((b) => b.startsWith('data: ') && b !== 'data: [DONE]').map((b) => { try { return JSON.parse(b.slice(6)) as unknown } catch { return b } })
        resolve({ status: res.statusCode ?? 0, text, events })
      }
      res.on('data', (c: Buffer) => { text += c.toString('utf8'); if (first) { first = false; onFirstChunk() } })
      res.on('end', done)
      res.on('error', done)
      res.on('aborted', done)
    })
    req.setTimeout(15_000, () => { req.destroy() })
    req.on('error', () => { resolve({ status: 0, text: '', events: [] }) })
    req.end(body)
  })
}

function endsWithError (r: StreamResult): boolean {
  const last = r.events.at(-1) as { error?: { code?: string, type?: string } } | undefined
  return r.status === 200 && typeof last === 'object' && last !== null && typeof last.error === 'object'
}

t.test('backend process SIGKILLed mid-stream: SSE error event to the caller, recorded once as a backend error', async (t) => {
  const child = spawn(process.execPath, ['-e', BACKEND], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const received: string[] = []
  let port = 0
  const ready = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      const m = JSON.parse(l) as { port?: number, id?: string }
      if (m.port !== undefined) { port = m.port; resolve() }
      if (m.id !== undefined) received.push(m.id)
    })
  })
  await ready
  const { dir, cleanup } = await tempDir('backend-kill')
  t.teardown(cleanup)
  const auditDir = join(dir, 'audit')
  let gw: Gateway | null = await startGateway(await writeConfig(dir, gatewayConfig(`http://127.0.0.1:${port}`, auditDir)))
  t.teardown(() => { gw?.kill('SIGKILL') })
  const g = gw

  const ids = Array.from({ length: 4 }, (_, i) => `killed-stream-${i}`)
  let started = 0
  let killed: Promise<unknown> | null = null
  const results = await Promise.all(ids.map(async (id) => await stream(g.url, id, () => {
    // once every stream is under way, the backend dies
    if (++started === ids.length) { child.kill('SIGKILL'); killed = once(child, 'exit') }
  })))
  await killed
  for (const [i, r] of results.entries()) {
    t.ok(endsWithError(r), `${ids[i] ?? ''}: the stream ends with an SSE error event (${JSON.stringify(r.events.at(-1))})`)
  }
  t.equal(await g.stop(10_000), 0, 'clean exit')
  gw = null
  const audit = await readAudit(auditDir)
  const c = completeness(received, audit)
  t.comment(describe(c, ids.length))
  t.same(c.missing, [], '0 missing')
  t.same(c.duplicated, [], '0 duplicated')
  t.same(ids.map((id) => audit.byId.get(id)?.[0]?.outcome), ids.map(() => 'backend_error'), 'recorded as backend errors')
})

t.test('backend connection reset mid-stream: SSE error event, recorded once as a backend error', async (t) => {
  let streams = 0
  const backend = await countingBackend({
    handle: (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n')
      const n = ++streams
      // an RST for half of them, a plain close for the others
      setTimeout(() => { if (n % 2 === 0) res.socket?.resetAndDestroy(); else res.socket?.destroy() }, 50)
      return true
    }
  })
  t.teardown(backend.close)
  const { dir, cleanup } = await tempDir('backend-reset')
  t.teardown(cleanup)
  const auditDir = join(dir, 'audit')
  let gw: Gateway | null = await startGateway(await writeConfig(dir, gatewayConfig(backend.url, auditDir)))
  t.teardown(() => { gw?.kill('SIGKILL') })
  const g = gw
  const ids = Array.from({ length: 6 }, (_, i) => `reset-stream-${i}`)
  const results = await Promise.all(ids.map(async (id) => await stream(g.url, id, () => {})))
  for (const [i, r] of results.entries()) t.ok(endsWithError(r), `${ids[i] ?? ''}: SSE error event (${JSON.stringify(r.events.at(-1))})`)
  t.equal(await g.stop(10_000), 0, 'clean exit')
  gw = null
  const audit = await readAudit(auditDir)
  const c = completeness(backend.counts.keys(), audit)
  t.comment(describe(c, ids.length))
  t.same(c.missing, [], '0 missing')
  t.same(c.duplicated, [], '0 duplicated')
  t.same(ids.map((id) => audit.byId.get(id)?.[0]?.outcome), ids.map(() => 'backend_error'), 'recorded as backend errors')
})
