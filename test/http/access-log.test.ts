import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { request as httpRequest } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { baseConfig, startUpstream } from '../helpers/gateway.js'
import { parseConfig } from '../../src/config/load.js'
import { createRuntime, closeRuntime } from '../../src/runtime.js'
import { buildApp } from '../../src/http/app.js'
import { waitFor } from '../helpers/ops.js'

/** A gateway whose log lines are collected; `log` is the config's log section. */
async function gatewayWithLog (t: Test, backendUrl: string, log: Record<string, unknown>): Promise<{ app: FastifyInstance, lines: Array<Record<string, unknown>> }> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-access-'))
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>); cb() } })
  const config = parseConfig({ ...baseConfig(backendUrl, { log }), audit: { dir: join(dir, 'audit') } })
  const rt = await createRuntime(config, dir, pino({ level: config.log.level }, sink))
  const app = await buildApp(rt)
  t.teardown(async () => { await app.close(); await closeRuntime(rt); await rm(dir, { recursive: true, force: true }) })
  return { app, lines }
}

const chat = { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }

t.test('one access line per request at info, none of Fastify\'s own', async (t) => {
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  t.teardown(async () => { await up.close() })
  const gw = await gatewayWithLog(t, up.url, { level: 'info' })
  const ok = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions?trace=secret', headers: { authorization: 'Bearer test-key-tier1', 'x-request-id': 'acc-1' }, payload: chat })
  t.equal(ok.statusCode, 200)
  const denied = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { authorization: 'Bearer nope', 'x-request-id': 'acc-2' }, payload: chat })
  t.equal(denied.statusCode, 401)

  const perRequest = (id: string): Array<Record<string, unknown>> => gw.lines.filter((l) => l.reqId === id)
  t.equal(perRequest('acc-1').length, 1, 'exactly one line for the request')
  t.match(perRequest('acc-1')[0], { level: 30, msg: 'request', method: 'POST', path: '/v1/chat/completions', status: 200, rule: String, ms: Number })
  t.notOk(JSON.stringify(perRequest('acc-1')).includes('secret'), 'the query string is not logged')
  t.match(perRequest('acc-2'), [{ level: 30, msg: 'request', status: 401, rule: 'identity' }], 'a refused request gets its one line, named by what refused')
  t.notOk(gw.lines.some((l) => l.msg === 'incoming request' || l.msg === 'request completed'), 'Fastify request logging is off')
})

t.test('log.accessLevel sets the level of the line', async (t) => {
  const quiet = await gatewayWithLog(t, 'http://127.0.0.1:9', { level: 'info', accessLevel: 'debug' })
  await quiet.app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: 'Bearer test-key-tier1', 'x-request-id': 'acc-3' } })
  t.equal(quiet.lines.filter((l) => l.reqId === 'acc-3').length, 0, 'debug lines are not written at level info')

  const loud = await gatewayWithLog(t, 'http://127.0.0.1:9', { level: 'info', accessLevel: 'warn' })
  await loud.app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: 'Bearer test-key-tier1', 'x-request-id': 'acc-4' } })
  t.match(loud.lines.filter((l) => l.reqId === 'acc-4'), [{ level: 40, msg: 'request', status: 200, path: '/v1/models' }])
})

t.test('a caller who hangs up still gets its one line, with the outcome', async (t) => {
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const up = await startUpstream((_req, res) => { void held.then(() => { res.end('{}') }) })
  t.teardown(async () => { release(); await up.close() })
  const gw = await gatewayWithLog(t, up.url, { level: 'info' })
  const url = await gw.app.listen({ host: '127.0.0.1', port: 0 })
  const req = httpRequest(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer test-key-tier1', 'content-type': 'application/json', 'x-request-id': 'acc-5' } })
  req.on('error', () => {})
  req.end(JSON.stringify(chat))
  await waitFor(() => up.requests.length === 1, 5000, 'the request to reach the backend')
  req.destroy()
  await waitFor(() => gw.lines.some((l) => l.reqId === 'acc-5' && l.msg === 'request'), 5000, 'the access line')
  t.match(gw.lines.filter((l) => l.reqId === 'acc-5' && l.msg === 'request'), [{ outcome: 'client_abort', path: '/v1/chat/completions' }])
  release()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(gw.lines.filter((l) => l.reqId === 'acc-5' && l.msg === 'request').length, 1, 'exactly one access line')
})
