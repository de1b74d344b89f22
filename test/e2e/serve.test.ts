import t, { type Test } from 'tap'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { baseConfig } from '../helpers/gateway.js'
import { spawnGateway, spawnMock } from '../helpers/process.js'
import { open, send, chat, TIER1, sseData, firstChunk } from '../helpers/forward.js'

/*
 * The shipped topology (docker/compose.yaml) with real processes: `geogate mock-backend` and `geogate serve`
 * spawned from the build, the official openai client in front.
 */

async function tmpConfig (t: Test, backendUrl: string, patch: Record<string, unknown> = {}): Promise<{ file: string, dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-e2e-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const cfg = baseConfig(backendUrl, {
    server: { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, trustedProxies: [], shutdownGraceMs: 10_000 },
    audit: { dir: join(dir, 'audit'), scope: 'all' },
    log: { level: 'info' },
    ...patch
  })
  const file = join(dir, 'geogate.yaml')
  // JSON is YAML: the loader reads it like any shipped config.
  await writeFile(file, JSON.stringify(cfg, null, 2))
  return { file, dir }
}

/** Every audit file's text, whatever its layout: the test only looks for request ids in it. */
async function auditText (dir: string): Promise<string> {
  let out = ''
  for (const e of await readdir(join(dir, 'audit'), { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out += await readFile(join(e.parentPath, e.name), 'utf8')
  }
  return out
}

t.test('the openai client, streaming and not, through a spawned gateway to a spawned mock backend', async (t) => {
  const mock = await spawnMock(['--ttft-ms', '20', '--itl-ms', '5'])
  t.teardown(() => { mock.proc.kill() })
  const { file, dir } = await tmpConfig(t, mock.url)
  const gw = await spawnGateway(file)
  t.teardown(() => { gw.proc.kill() })
  const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'test-key-tier1', maxRetries: 0 })

  const whole = await client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 6 })
  t.equal(whole.object, 'chat.completion')
  t.equal(whole.choices[0]?.message.content?.split(' ').length, 6, 'max_tokens honoured')
  t.same(whole.usage, { prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 })

  const stream = await client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 6, stream: true })
  let text = ''
  let chunks = 0
  for await (const chunk of stream) {
    chunks++
    text += chunk.choices[0]?.delta.content ?? ''
  }
  t.equal(text, whole.choices[0]?.message.content, 'deterministic: the stream says what the whole answer said')
  t.ok(chunks >= 6)

  const withUsage = await client.chat.completions.create({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 3, stream: true, stream_options: { include_usage: true } })
  let usage: unknown = null
  for await (const chunk of withUsage) if (chunk.usage !== null && chunk.usage !== undefined) usage = chunk.usage
  t.same(usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 })

  const emb = await client.embeddings.create({ model: 'llama-3.1-8b', input: ['a', 'b c'] })
  t.equal(emb.data.length, 2)
  t.equal(emb.usage.prompt_tokens, 3)

  const refused = await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }).then(() => null, (e: unknown) => e)
  t.ok(refused instanceof OpenAI.APIError && refused.status === 404, 'an unknown model surfaces as the SDK\'s APIError 404')

  const bad = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'wrong', maxRetries: 0 })
  const denied = await bad.models.list().then(() => null, (e: unknown) => e)
  t.ok(denied instanceof OpenAI.AuthenticationError, 'a wrong key is the SDK\'s AuthenticationError')

  gw.proc.kill('SIGTERM')
  t.equal(await gw.proc.exited, 0)
  const audit = await auditText(dir)
  t.ok(audit.includes(whole.id) || audit.split('\n').filter((l) => l.includes('llama-3.1-8b')).length >= 4, 'interactions recorded in the audit log')
})

t.test('SIGTERM drains: in-flight streams finish, /readyz says 503, new connections are refused, exit 0', async (t) => {
  const mock = await spawnMock(['--ttft-ms', '50', '--itl-ms', '30'])
  t.teardown(() => { mock.proc.kill() })
  const { file, dir } = await tmpConfig(t, mock.url)
  const gw = await spawnGateway(file)
  t.teardown(() => { gw.proc.kill('SIGKILL') })

  const res = await open(gw.url, '/v1/chat/completions', { headers: { ...TIER1, 'x-request-id': 'drain-1' }, body: chat('llama-3.1-8b', { stream: true, max_tokens: 30 }) })
  t.equal(res.statusCode, 200)
  let text = await firstChunk(res)
  gw.proc.kill('SIGTERM')
  await gw.proc.waitForLine((l) => l.msg === 'shutting down')
  const ready = await send(gw.adminUrl, '/readyz', { method: 'GET' })
  t.equal(ready.status, 503, '/readyz reports draining')
  const refused = await send(gw.url, '/v1/models', { method: 'GET', headers: { authorization: TIER1.authorization } }).then(() => null, (e: NodeJS.ErrnoException) => e.code)
  t.equal(refused, 'ECONNREFUSED', 'no new connections')
  for await (const c of res) text += (c as Buffer).toString('utf8')
  const tokens = sseData(text).map((d) => (d.choices as Array<{ delta?: { content?: string } }> | undefined)?.[0]?.delta?.content ?? '').filter((c) => c !== '')
  t.ok(text.endsWith('data: [DONE]\n\n'), 'the in-flight stream ran to its end')
  t.equal(tokens.length, 30, 'every token of it')
  t.equal(await gw.proc.exited, 0)
  t.match(await auditText(dir), /drain-1/, 'its audit record was flushed before exit')
})

t.test('SIGTERM past the grace period: what is left is cancelled with outcome shutdown, still audited, exit 0', async (t) => {
  const mock = await spawnMock(['--ttft-ms', '20', '--itl-ms', '50'])
  t.teardown(() => { mock.proc.kill() })
  const { file, dir } = await tmpConfig(t, mock.url, {
    server: { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, trustedProxies: [], shutdownGraceMs: 300 }
  })
  const gw = await spawnGateway(file)
  t.teardown(() => { gw.proc.kill('SIGKILL') })
  const res = await open(gw.url, '/v1/chat/completions', { headers: { ...TIER1, 'x-request-id': 'cut-1' }, body: chat('llama-3.1-8b', { stream: true, max_tokens: 1000 }) })
  let text = await firstChunk(res)
  gw.proc.kill('SIGTERM')
  for await (const c of res) text += (c as Buffer).toString('utf8')
  const last = sseData(text).at(-1) as { error?: { code: string } }
  t.equal(last.error?.code, 'service_unavailable', 'the stream ends with an error event the SDKs raise')
  t.equal(await gw.proc.exited, 0)
  await gw.proc.waitForLine((l) => l.msg === 'grace period over: cancelling in-flight requests')
  const audit = await auditText(dir)
  const line = audit.split('\n').find((l) => l.includes('cut-1'))
  t.ok(line !== undefined, 'the cancelled interaction is in the audit log')
})

async function freePort (): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  await once(s, 'close')
  return port
}

t.test('serve --with-mock-backend (npm start): the loopback backend is served by the bundled mock', async (t) => {
  const port = await freePort()
  const { file } = await tmpConfig(t, `http://127.0.0.1:${port}`)
  const gw = await spawnGateway(file, ['--with-mock-backend', '--mock-ttft-ms', '5', '--mock-itl-ms', '1'])
  t.teardown(() => { gw.proc.kill('SIGKILL') })
  const listening = await gw.proc.waitForLine((l) => l.msg === 'geogate listening')
  t.same(listening.mockBackends, { gpu: `http://127.0.0.1:${port}` })
  t.ok(gw.proc.stderr.some((l) => l.startsWith('geogate: data plane http://127.0.0.1:')), 'one plain line for people')
  const r = await send(gw.url, '/v1/chat/completions', { headers: TIER1, body: chat('llama-3.1-8b', { max_tokens: 2 }) })
  t.equal(r.status, 200)
  t.equal((JSON.parse(r.text) as { usage: { completion_tokens: number } }).usage.completion_tokens, 2)
  gw.proc.kill('SIGTERM')
  t.equal(await gw.proc.exited, 0)
})
