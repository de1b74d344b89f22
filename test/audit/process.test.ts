import t, { type Test } from 'tap'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest, Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { baseConfig, startUpstream, type Upstream } from '../helpers/gateway.js'
import { spawnGateway } from '../helpers/process.js'
import { readRecords } from '../../src/audit/read.js'
import { verifyDir } from '../../src/audit/verify.js'
import type { InteractionRecord, SystemRecord } from '../../src/audit/types.js'

/*
 * Whole processes: the built gateway, spawned. SIGTERM under load loses nothing; after kill -9 the next start
 * recovers the chain and records the interactions that were in flight as outcome unknown.
 */

async function setup (t: Test, upstreamUrl: string, patch: Record<string, unknown> = {}): Promise<{ file: string, auditDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-audit-proc-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const auditDir = join(dir, 'audit')
  const cfg = baseConfig(upstreamUrl, {
    server: { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, trustedProxies: [], shutdownGraceMs: 10_000 },
    audit: { dir: auditDir, scope: 'all', writerId: 'gw-1' },
    log: { level: 'info' },
    ...patch
  })
  const file = join(dir, 'geogate.json')
  await writeFile(file, JSON.stringify(cfg))
  return { file, auditDir }
}

async function interactions (dir: string): Promise<{ recs: InteractionRecord[], system: SystemRecord[] }> {
  const recs: InteractionRecord[] = []
  const system: SystemRecord[] = []
  for await (const { record } of readRecords(dir)) {
    if (record.kind === 'interaction') recs.push(record)
    if (record.kind === 'system') system.push(record)
  }
  return { recs, system }
}

/** Poll a condition on disk (another process writes it); no fixed sleep decides the outcome. */
async function until (what: string, cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await delay(20)
  }
}

function post (base: string, id: string, body: unknown, agent: Agent, key = 'test-key-tier1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body)
    const req = httpRequest(base + '/v1/chat/completions', {
      method: 'POST',
      agent,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), 'x-request-id': id }
    }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
}

function slowUpstream (): Promise<Upstream> {
  return startUpstream((req, res, body) => {
    const b = JSON.parse(body) as { stream?: boolean, messages?: Array<{ content: string }> }
    if (b.messages?.[0]?.content === 'HANG') {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: {"choices":[{"delta":{"content":"…"}}]}\n\n')
      return // open until the gateway goes away
    }
    if (b.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      let n = 0
      const tick = setInterval(() => {
        if (++n < 5) { res.write('data: {"choices":[{"delta":{"content":"x"}}]}\n\n'); return }
        clearInterval(tick)
        res.write('data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n')
        res.end('data: [DONE]\n\n')
      }, 10)
      return
    }
    setTimeout(() => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))
    }, 15)
  })
}

t.test('SIGTERM under load: every interaction the gateway took on is on the record, once', async (t) => {
  const up = await slowUpstream()
  t.teardown(up.close)
  const { file, auditDir } = await setup(t, up.url)
  const gw = await spawnGateway(file)
  t.teardown(() => { gw.proc.kill('SIGKILL') })
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  t.teardown(() => { agent.destroy() })
  const answered = new Map<string, number>()
  let stop = false
  let n = 0
  const worker = async (w: number): Promise<void> => {
    while (!stop) {
      const id = `w${w}-${n++}`
      const body = { model: n % 3 === 0 ? 'frontier-1' : 'llama-3.1-8b', stream: n % 2 === 0, messages: [{ role: 'user', content: 'hi' }] }
      try {
        answered.set(id, await post(gw.url, id, body, agent, n % 5 === 0 ? 'test-key-tier2' : 'test-key-tier1'))
      } catch {
        return // the gateway stopped taking connections
      }
    }
  }
  const workers = Array.from({ length: 12 }, async (_, w) => { await worker(w) })
  await until('load to build up', async () => up.requests.length >= 150)
  gw.proc.kill('SIGTERM')
  t.equal(await gw.proc.exited, 0, 'clean exit')
  stop = true
  await Promise.all(workers)

  const { recs } = await interactions(auditDir)
  const ids = recs.map((r) => r.requestId)
  t.equal(new Set(ids).size, ids.length, '0 duplicated')
  const seen = new Set(up.requests.map((r) => String(r.headers['x-request-id'])))
  const allowed = new Set(recs.filter((r) => r.decision === 'allow').map((r) => r.requestId))
  t.same([...seen].sort(), [...allowed].sort(), 'backend-seen ids = allowed records')
  const missing = [...answered].filter(([id, status]) => status !== 503 && !ids.includes(id)).map(([id]) => id)
  t.same(missing, [], '0 missing: every answered request has its record')
  t.equal(recs.filter((r) => r.outcome === 'unknown').length, 0, 'in-flight requests finished within the grace period')
  t.ok(recs.length >= 150, `${recs.length} records`)
  const v = await verifyDir(auditDir)
  t.equal(v.ok, true, JSON.stringify(v.problem))
  t.equal(v.chains, 1)
})

t.test('kill -9 mid-stream: the next start recovers the chain and records the streams in flight as unknown', async (t) => {
  const up = await slowUpstream()
  t.teardown(up.close)
  const { file, auditDir } = await setup(t, up.url)
  const first = await spawnGateway(file)
  t.teardown(() => { first.proc.kill('SIGKILL') })
  const agent = new Agent({ keepAlive: false })
  t.teardown(() => { agent.destroy() })
  const done: string[] = []
  for (let i = 0; i < 20; i++) { await post(first.url, `done-${i}`, { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }, agent); done.push(`done-${i}`) }
  const hanging = Array.from({ length: 6 }, (_, i) => `hang-${i}`)
  const pending = hanging.map(async (id) => await post(first.url, id, { model: 'llama-3.1-8b', stream: true, messages: [{ role: 'user', content: 'HANG' }] }, agent).catch(() => 0))
  // Wait until what is on disk says: the finished ones are recorded and the hanging ones are in the journal.
  // (Final records reach the segments within the group-commit window; the journal holds every begin at once.)
  const text = async (journal: boolean): Promise<string> => {
    let s = ''
    for (const f of await readdir(auditDir)) if (f.endsWith('.jsonl') && f.endsWith('.inflight.jsonl') === journal) s += await readFile(join(auditDir, f), 'utf8')
    return s
  }
  await until('records and journal on disk', async () => {
    const records = await text(false)
    const journal = await text(true)
    return done.every((id) => records.includes(`"requestId":"${id}"`)) && hanging.every((id) => journal.includes(`"requestId":"${id}"`))
  })
  first.proc.kill('SIGKILL')
  await first.proc.exited
  await Promise.all(pending)
  t.equal((await verifyDir(auditDir)).ok, true, 'what the crashed writer left is intact so far')

  const second = await spawnGateway(file)
  t.teardown(() => { second.proc.kill('SIGKILL') })
  await post(second.url, 'after-restart', { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }, agent)
  second.proc.kill('SIGTERM')
  t.equal(await second.proc.exited, 0)

  const { recs, system } = await interactions(auditDir)
  const byId = new Map(recs.map((r) => [r.requestId, r]))
  t.equal(recs.length, 20 + 6 + 1, 'one record each, none twice')
  t.ok(done.every((id) => byId.get(id)?.outcome === 'ok'), 'finished interactions as they were')
  t.same(hanging.map((id) => [byId.get(id)?.outcome, byId.get(id)?.status]), hanging.map(() => ['unknown', null]), 'in flight at the crash: outcome unknown')
  t.equal(byId.get('after-restart')?.outcome, 'ok')
  t.ok(system.some((s) => s.event === 'recovered' && s.detail.unknownOutcomes === 6), 'the recovery is on the record')
  const v = await verifyDir(auditDir)
  t.equal(v.ok, true, JSON.stringify(v.problem))
  t.equal(v.chains, 1, 'the restart continued the same chain')
})
