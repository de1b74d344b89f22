import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'
import { Cancel } from '../../src/core/cancel.js'

/** A server that answers the head at once and the body only when told (or never). */
async function slowServer (t: Test): Promise<{ url: string, closed: Promise<unknown>, release: () => void }> {
  let release = (): void => {}
  let closedResolve: (v: unknown) => void = () => {}
  const closed = new Promise((resolve) => { closedResolve = resolve })
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.socket.once('close', () => { closedResolve(true) })
    if (req.url === '/hang') return
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('first ')
    release = () => { res.end('last') }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, closed, release: () => { release() } }
}

t.test('abort before the answer: undici rejects with the reason and closes the connection', async (t) => {
  const s = await slowServer(t)
  const pool = new Pool(s.url)
  t.teardown(async () => { await pool.destroy() })
  const c = new Cancel()
  const p = pool.request({ path: '/hang', method: 'GET', signal: c })
  setImmediate(() => { c.abort(new Error('client_abort')) })
  await t.rejects(p, { message: 'client_abort' })
  t.equal(c.aborted, true)
})

t.test('abort while the body streams: the body fails with the reason; the listener is gone after', async (t) => {
  const s = await slowServer(t)
  const pool = new Pool(s.url)
  t.teardown(async () => { await pool.destroy() })
  const c = new Cancel()
  const res = await pool.request({ path: '/body', method: 'GET', signal: c })
  t.equal(res.statusCode, 200)
  const text = res.body.text()
  c.abort(new Error('client_abort'))
  await t.rejects(text, { message: 'client_abort' })
  c.abort(new Error('again'))
  t.equal(c.reason?.message, 'client_abort', 'the first reason stays')
})

t.test('a request that ends normally removes its listener; a later abort calls nothing', async (t) => {
  const s = await slowServer(t)
  const pool = new Pool(s.url)
  t.teardown(async () => { await pool.destroy() })
  const c = new Cancel()
  let calls = 0
  const res = await pool.request({ path: '/body', method: 'GET', signal: c })
  t.equal(c.listenerCount('abort'), 1, 'undici listens while the body is read')
  const closed = once(res.body, 'close')
  s.release()
  t.equal(await res.body.text(), 'first last')
  await closed
  t.equal(c.listenerCount('abort'), 0, 'and stops listening once the body is done')
  c.on('abort', () => { calls++ })
  const extra = (): void => { calls += 100 }
  c.on('abort', extra)
  c.removeListener('abort', extra)
  c.abort(new Error('late'))
  t.equal(calls, 1, 'only the listener still attached ran, once')
  c.on('abort', () => { calls++ })
  t.equal(calls, 1, 'no listener is kept once aborted')
})

t.test('already aborted: undici does not send the request', async (t) => {
  const s = await slowServer(t)
  const pool = new Pool(s.url)
  t.teardown(async () => { await pool.destroy() })
  const c = new Cancel()
  c.abort(new Error('client_abort'))
  await t.rejects(pool.request({ path: '/body', method: 'GET', signal: c }), { message: 'client_abort' })
})
