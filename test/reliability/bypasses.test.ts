/*
 * Cheap ways around the policy and the limits (issue 10), against a spawned gateway: what the backend receives and
 * what the log holds.
 *
 * - `n` / `best_of` multiply the output: a bound on max_tokens alone bounds one choice.
 * - Object.prototype names (`toString`, `constructor`, `__proto__`, …) are not models, tiers or anything else.
 * - Deeply nested JSON is a 400 before any stage runs.
 * - Endpoints without a `model` in the body (`/v1/responses/{id}`) go to the single backend.
 * - A slow-header client is cut at the configured headersTimeoutMs, not at Node's 30 s check interval.
 */
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { join } from 'node:path'
import {
  admin, call, chat, chatBody, countingBackend, errorCode, gatewayConfig, KEY1, KEY2, readAudit, startGateway,
  tempDir, writeConfig, type CountingBackend, type Gateway
} from '../helpers/reliability.js'

const BOUND = 1024
const HEADERS_TIMEOUT_MS = 2000

interface Setup { gw: Gateway, backend: CountingBackend, auditDir: string }

async function setup (t: Test, name: string, tierPatch: Record<string, unknown> = {}): Promise<Setup> {
  const backend = await countingBackend({
    handle: (req, res) => {
      if ((req.url ?? '').startsWith('/v1/responses/')) {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ id: 'resp_abc123', object: 'response', status: 'completed', output: [] }))
        return true
      }
      return false
    }
  })
  const { dir, cleanup } = await tempDir(name)
  const auditDir = join(dir, 'audit')
  const base = gatewayConfig(backend.url, auditDir)
  const cfg = gatewayConfig(backend.url, auditDir, {
    server: { ...(base.server as Record<string, unknown>), headersTimeoutMs: HEADERS_TIMEOUT_MS },
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat', 'completions', 'embeddings', 'tools', 'streaming'], limits: { requestsPerMinute: 10_000 } },
      tier2: { models: ['llama-*'], capabilities: ['chat', 'completions', 'embeddings', 'streaming'], maxOutputTokens: BOUND, ...tierPatch },
      embargoed: { deny: true }
    }
  })
  let gw: Gateway
  try {
    gw = await startGateway(await writeConfig(dir, cfg))
  } catch (err) {
    await backend.close()
    await cleanup()
    throw err
  }
  t.teardown(async () => { await gw.crash(); await backend.close(); await cleanup() })
  return { gw, backend, auditDir }
}

/** n × max_tokens the backend was asked for (max_tokens absent: unbounded). */
function asked (body: string): { choices: number, perChoice: number } {
  const b = JSON.parse(body) as { n?: number, best_of?: number, max_tokens?: number, max_completion_tokens?: number }
  return { choices: Math.max(b.n ?? 1, b.best_of ?? 1), perChoice: b.max_tokens ?? b.max_completion_tokens ?? Infinity }
}

t.test('bypasses of the policy and the limits', async (t) => {
  const { gw, backend, auditDir } = await setup(t, 'bypass')

  // First, while the gateway is young: Node checks header timeouts only every connectionsCheckingInterval (30 s).
  t.test('a slow-header client is cut at the configured headersTimeoutMs', async (t) => {
    const start = Date.now()
    const cutAfter = await new Promise<number | null>((resolve) => {
      const s = connect(gw.port, '127.0.0.1', () => { s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n') })
      const drip = setInterval(() => { s.write('X-Slow: a\r\n') }, 250) // a header line now and then, never the end
      const give = setTimeout(() => { clearInterval(drip); s.destroy(); resolve(null) }, HEADERS_TIMEOUT_MS + 4000)
      s.on('error', () => {})
      s.on('close', () => { clearInterval(drip); clearTimeout(give); resolve(Date.now() - start) })
      s.resume()
    })
    t.comment(`slow-header client: ${cutAfter === null ? `still connected after ${HEADERS_TIMEOUT_MS + 4000} ms` : `cut after ${cutAfter} ms`} (headersTimeoutMs ${HEADERS_TIMEOUT_MS})`)
    t.ok(cutAfter !== null && cutAfter <= HEADERS_TIMEOUT_MS + 2000, `cut within headersTimeoutMs + 2 s (${HEADERS_TIMEOUT_MS + 2000} ms)`)
    t.ok(cutAfter === null || cutAfter >= HEADERS_TIMEOUT_MS - 100, 'not before the configured time')
  })

  t.test('n and best_of multiply the output bound', async (t) => {
    const cases = [
      { id: 'n-1000', path: '/v1/chat/completions', body: chatBody('llama-3.1-8b', { n: 1000, max_tokens: 1000 }) },
      { id: 'n-2', path: '/v1/chat/completions', body: chatBody('llama-3.1-8b', { n: 2, max_tokens: 1000 }) },
      { id: 'n-1000-mct', path: '/v1/chat/completions', body: chatBody('llama-3.1-8b', { n: 1000, max_completion_tokens: 1000 }) },
      { id: 'best-of-1000', path: '/v1/completions', body: { model: 'llama-3.1-8b', prompt: 'hi', best_of: 1000, n: 1, max_tokens: 1000 } }
    ]
    for (const c of cases) {
      const a = await call(gw.url, c.path, { headers: { authorization: `Bearer ${KEY2}`, 'x-request-id': c.id }, body: c.body })
      const got = backend.requests.find((r) => r.id === c.id)
      if (got === undefined) {
        t.equal(a.status, 403, `${c.id}: not forwarded, so refused 403 (got ${a.status} ${errorCode(a) ?? ''})`)
        continue
      }
      const q = asked(got.body)
      t.ok(q.choices * q.perChoice <= BOUND, `${c.id}: the backend was asked for at most ${BOUND} output tokens in all (asked ${q.choices} × ${q.perChoice})`)
    }
  })

  t.test('Object.prototype names are not models: 404 (or 400), never forwarded, charged or audited allow', async (t) => {
    const remaining = async (id: string): Promise<number> => {
      const a = await chat(gw.url, id)
      t.equal(a.status, 200, `${id}: served`)
      return Number(a.headers['x-ratelimit-remaining-requests'])
    }
    const before = await remaining('proto-before')
    const names = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']
    for (const name of names) {
      const id = `proto-${name}`
      const a = await chat(gw.url, id, { body: chatBody(name) })
      t.ok((a.status === 404 && errorCode(a) === 'model_not_found') || a.status === 400, `model "${name}": 404 model_not_found or 400 (got ${a.status} ${errorCode(a) ?? ''})`)
      t.notOk(backend.counts.has(id), `model "${name}": not forwarded`)
    }
    const metrics = (await admin(gw.adminUrl, '/metrics')).body
    const labelled = metrics.split('\n').filter((l) => names.some((name) => l.includes(`model="${name}"`)))
    t.same(labelled, [], 'no metric is labelled with a prototype name (an unknown model is "other")')
    const after = await remaining('proto-after')
    t.ok(Number.isFinite(before) && Number.isFinite(after), 'the limit headers are there to read')
    t.equal(before - after, 1, `only the request between was charged (remaining ${before} → ${after})`)
  })

  t.test('admin plane: tier names from the prototype', async (t) => {
    t.equal((await admin(gw.adminUrl, '/admin/tiers/tier1')).status, 200, 'control: a real tier')
    const put = await admin(gw.adminUrl, '/admin/tiers/__proto__', { method: 'PUT', body: { models: ['*'], capabilities: ['chat'] } })
    t.equal(put.status, 400, `PUT /admin/tiers/__proto__ → 400 (got ${put.status} ${put.body})`)
    for (const name of ['toString', 'constructor', 'hasOwnProperty']) {
      const get = await admin(gw.adminUrl, `/admin/tiers/${name}`)
      t.equal(get.status, 404, `GET /admin/tiers/${name} → 404 (got ${get.status})`)
    }
  })

  t.test('JSON nested 100,000 deep: 400 before any backend contact', async (t) => {
    const body = '{"model":"llama-3.1-8b","messages":[{"role":"user","content":"hi"}],"x":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}'
    const a = await call(gw.url, '/v1/chat/completions', { headers: { authorization: `Bearer ${KEY1}`, 'x-request-id': 'deep-json' }, body })
    t.equal(a.status, 400, `400 (got ${a.status} ${errorCode(a) ?? ''})`)
    t.notOk(backend.counts.has('deep-json'), 'the backend was not contacted')
    const again = await chat(gw.url, 'deep-json-after')
    t.equal(again.status, 200, 'the gateway still serves')
  })

  t.test('GET /v1/responses/{id} with one backend: forwarded to it', async (t) => {
    const get = await call(gw.url, '/v1/responses/resp_abc123', { headers: { authorization: `Bearer ${KEY1}`, 'x-request-id': 'responses-get' } })
    t.equal(get.status, 200, `200 from the backend (got ${get.status} ${get.body.slice(0, 120)})`)
    t.equal(backend.requests.find((r) => r.id === 'responses-get')?.url, '/v1/responses/resp_abc123', 'the backend received it')
    const cancel = await call(gw.url, '/v1/responses/resp_abc123/cancel', { method: 'POST', headers: { authorization: `Bearer ${KEY1}`, 'x-request-id': 'responses-cancel' } })
    t.equal(cancel.status, 200, `POST …/cancel: 200 from the backend (got ${cancel.status} ${cancel.body.slice(0, 120)})`)
    t.equal(backend.requests.find((r) => r.id === 'responses-cancel')?.url, '/v1/responses/resp_abc123/cancel', 'the backend received the cancel')
  })

  t.test('what the log holds', async (t) => {
    t.equal(await gw.stop(10_000), 0, 'clean exit (the log is flushed)')
    const audit = await readAudit(auditDir)
    for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']) {
      const recs = audit.byId.get(`proto-${name}`) ?? []
      t.notOk(recs.some((r) => r.decision === 'allow'), `model "${name}" never audited allow (${recs.map((r) => `${String(r.decision)}/${String(r.status)}`).join(', ') || 'no record'})`)
    }
    const deep = audit.byId.get('deep-json') ?? []
    t.notOk(deep.some((r) => r.outcome === 'backend_error'), `deep JSON not audited as a backend error (${deep.map((r) => String(r.outcome)).join(', ') || 'no record'})`)
    for (const id of ['responses-get', 'responses-cancel']) {
      const rec = audit.byId.get(id)?.[0]
      t.ok(rec === undefined || backend.counts.has(id) || rec.decision !== 'allow', `${id}: not audited as an allowed interaction it was not (${String(rec?.decision)}/${String(rec?.status)})`)
    }
    const twice = [...audit.byId].filter(([, r]) => r.length > 1).map(([id]) => id)
    t.same(twice, [], '0 duplicated')
    t.same([...backend.counts.keys()].filter((id) => audit.byId.get(id)?.length !== 1), [], 'every request the backend received has one record')
  })
})

t.test('maxChoices on a tier is respected', async (t) => {
  let s: Setup
  try {
    s = await setup(t, 'max-choices', { maxChoices: 4 })
  } catch (err) {
    t.fail(`a tier with maxChoices: 4 is not accepted: ${String((err as Error).message).split('\n').slice(0, 4).join(' ')}`)
    return
  }
  const a = await call(s.gw.url, '/v1/chat/completions', { headers: { authorization: `Bearer ${KEY2}`, 'x-request-id': 'choices-8' }, body: chatBody('llama-3.1-8b', { n: 8, max_tokens: 10 }) })
  const got = s.backend.requests.find((r) => r.id === 'choices-8')
  if (got === undefined) t.equal(a.status, 403, `n: 8 over maxChoices 4: refused 403 (got ${a.status})`)
  else t.ok(asked(got.body).choices <= 4, `n: 8 over maxChoices 4: the backend was asked for at most 4 choices (asked ${asked(got.body).choices})`)
})
