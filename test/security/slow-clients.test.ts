/*
 * A slowloris (headers trickled in, never finished) is cut at server.headersTimeoutMs, not up to 30 s later: Node
 * checks for expired connections every connectionsCheckingInterval, which the gateway sets to a quarter of the
 * shorter timeout. Raw sockets on a listening gateway.
 */
import t from 'tap'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { buildTestGateway, baseConfig } from '../helpers/gateway.js'
import { checkingIntervalMs } from '../../src/http/app.js'

t.test('the checking interval follows the timeouts', async (t) => {
  t.equal(checkingIntervalMs(30_000, 600_000), 7_500)
  t.equal(checkingIntervalMs(2_000, 600_000), 500)
  t.equal(checkingIntervalMs(30_000, 1_000), 250, 'the shorter timeout counts')
  t.equal(checkingIntervalMs(30_000, 0), 7_500, 'requestTimeoutMs 0 is none')
  t.equal(checkingIntervalMs(50, 0), 100, 'never below 100 ms')
})

t.test('headersTimeoutMs 2000 cuts a slowloris within ~2.5 s', async (t) => {
  const gw = await buildTestGateway(baseConfig('http://127.0.0.1:9', { server: { trustedProxies: [], headersTimeoutMs: 2000, requestTimeoutMs: 10_000 } }))
  t.teardown(async () => { await gw.close() })
  await gw.app.listen({ port: 0, host: '127.0.0.1' })
  const port = (gw.app.server.address() as AddressInfo).port
  // several at once: each must be cut on its own
  const one = async (): Promise<{ ms: number, answer: string }> => await new Promise((resolve, reject) => {
    const started = Date.now()
    const chunks: Buffer[] = []
    const s = connect(port, '127.0.0.1', () => { s.write('POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n') })
    // one header byte every 200 ms: activity that must not extend the deadline
    let i = 0
    const drip = setInterval(() => { if (!s.destroyed) s.write(i++ === 0 ? 'x-slow: ' : 'a') }, 200)
    const deadline = setTimeout(() => { clearInterval(drip); s.destroy(); reject(new Error('still open after 8 s')) }, 8000)
    s.on('data', (c: Buffer) => chunks.push(c))
    s.on('error', () => {})
    s.on('close', () => {
      clearInterval(drip)
      clearTimeout(deadline)
      resolve({ ms: Date.now() - started, answer: Buffer.concat(chunks).toString('latin1').split('\r\n')[0] ?? '' })
    })
  })
  const cut = await Promise.all([one(), one(), one()])
  for (const c of cut) {
    t.ok(c.ms >= 1900, `not before the timeout (${c.ms} ms)`)
    t.ok(c.ms < 4000, `cut ${c.ms} ms after it started (headersTimeoutMs 2000, checked every 500 ms)`)
    t.equal(c.answer, 'HTTP/1.1 408 Request Timeout', 'answered 408 Request Timeout')
  }
})
