import t, { type Test } from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest, Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { baseConfig, startUpstream, type Upstream } from '../helpers/gateway.js'
import { spawnGateway } from '../helpers/process.js'
import { EXT4_TOOLS, ext4, mountSkip } from '../helpers/mounts.js'
import { readRecords } from '../../src/audit/read.js'
import { verifyDir } from '../../src/audit/verify.js'
import type { InteractionRecord } from '../../src/audit/types.js'

/*
 * Write-ahead, tested on whole processes: SIGKILL the built gateway at any instant — while requests are at the
 * backend, while they wait for their journal entry — and after the next start every request the backend received
 * has exactly one record (its final one, or outcome unknown written on recovery), never two, never none.
 */

async function configFile (t: Test, upstreamUrl: string, auditDir: string, audit: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-crash-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const cfg = baseConfig(upstreamUrl, {
    server: { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, trustedProxies: [], shutdownGraceMs: 5000 },
    audit: { dir: auditDir, scope: 'all', writerId: 'gw-1', ...audit },
    log: { level: 'info' }
  })
  const file = join(dir, 'geogate.json')
  await writeFile(file, JSON.stringify(cfg))
  return file
}

/** A backend answering in `ms`; it records each request as it arrives (before answering). */
async function slowBackend (ms: number): Promise<Upstream> {
  return await startUpstream((_req, res) => {
    setTimeout(() => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))
    }, ms)
  })
}

function post (base: string, id: string, agent: Agent): Promise<number> {
  return new Promise((resolve) => {
    const payload = JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] })
    const req = httpRequest(base + '/v1/chat/completions', {
      method: 'POST',
      agent,
      headers: { authorization: 'Bearer test-key-tier1', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), 'x-request-id': id }
    }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
      res.on('error', () => { resolve(0) })
    })
    req.on('error', () => { resolve(0) }) // the gateway died
    req.end(payload)
  })
}

/** `callers` loops posting until stop(); the statuses each got (0: no answer, the process died). */
function load (base: string, prefix: string, callers: number): { stop: () => Promise<Map<string, number>>, sent: () => number } {
  const agent = new Agent({ keepAlive: true, maxSockets: callers })
  const answered = new Map<string, number>()
  let stopped = false
  let n = 0
  const workers = Array.from({ length: callers }, async () => {
    while (!stopped) {
      const id = `${prefix}-${n++}`
      const status = await post(base, id, agent)
      answered.set(id, status)
      if (status === 0) return
    }
  })
  return {
    sent: () => n,
    stop: async () => {
      stopped = true
      await Promise.all(workers)
      agent.destroy()
      return answered
    }
  }
}

async function until (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await delay(10)
  }
}

interface Tally { sent: number, received: number, recorded: number, missing: string[], duplicated: string[], unknown: number, refused: number }

async function tally (auditDir: string, up: Upstream, answered: Map<string, number>): Promise<Tally> {
  const recs: InteractionRecord[] = []
  for await (const { record } of readRecords(auditDir)) if (record.kind === 'interaction') recs.push(record)
  const count = new Map<string, number>()
  for (const r of recs) count.set(r.requestId, (count.get(r.requestId) ?? 0) + 1)
  const received = new Set(up.requests.map((r) => String(r.headers['x-request-id'])))
  // Missing: received by the backend, or answered to the caller, with no record. Not expected: no answer (the
  // process died first) and 503 refusals (never forwarded; their records wait in memory until the disk returns,
  // so they die with the process — the one loss the design allows).
  const expected = new Set([...received, ...[...answered].filter(([, s]) => s !== 0 && s !== 503).map(([id]) => id)])
  return {
    sent: answered.size,
    received: received.size,
    recorded: recs.length,
    missing: [...expected].filter((id) => !count.has(id)),
    duplicated: [...count].filter(([, n]) => n > 1).map(([id]) => id),
    unknown: recs.filter((r) => r.outcome === 'unknown').length,
    refused: [...answered.values()].filter((s) => s === 503).length
  }
}

function report (t: Test, what: string, x: Tally): void {
  t.comment(`${what}: sent ${x.sent}, received by the backend ${x.received}, recorded ${x.recorded} (${x.unknown} unknown), missing ${x.missing.length}, duplicated ${x.duplicated.length}; refused 503 ${x.refused}`)
}

t.test('SIGKILL at random moments under load, several rounds: every request the backend received has exactly one record', async (t) => {
  const up = await slowBackend(200)
  t.teardown(up.close)
  const base = await mkdtemp(join(tmpdir(), 'geogate-crash-audit-'))
  t.teardown(async () => { await rm(base, { recursive: true, force: true }) })
  const auditDir = join(base, 'audit')
  const file = await configFile(t, up.url, auditDir)
  const answered = new Map<string, number>()
  const rounds = 4
  for (let round = 0; round < rounds; round++) {
    const gw = await spawnGateway(file)
    t.teardown(() => { gw.proc.kill('SIGKILL') })
    const l = load(gw.url, `r${round}`, 20)
    const target = up.requests.length + 40 + Math.floor(Math.random() * 80)
    await until('load to build up', () => up.requests.length >= target)
    // A random instant: requests are at the backend, in the journal commit, being recorded.
    await delay(Math.floor(Math.random() * 200))
    gw.proc.kill('SIGKILL')
    await gw.proc.exited
    for (const [id, s] of await l.stop()) answered.set(id, s)
  }
  const last = await spawnGateway(file)
  t.teardown(() => { last.proc.kill('SIGKILL') })
  last.proc.kill('SIGTERM')
  t.equal(await last.proc.exited, 0, 'the last start recovered and stopped cleanly')

  const x = await tally(auditDir, up, answered)
  report(t, `SIGKILL x${rounds}`, x)
  t.same(x.missing, [], '0 missing')
  t.same(x.duplicated, [], '0 duplicated')
  t.ok(x.unknown > 0, 'the requests at the backend at each kill are recorded as unknown')
  const v = await verifyDir(auditDir)
  t.equal(v.ok, true, `audit verify: ${JSON.stringify(v.problem ?? 'ok')}`)
  t.equal(v.chains, 1, 'one chain, continued by every restart')
})

t.test('a dead audit disk (EIO): requests wait on the journal and are refused, never forwarded; SIGKILL while they wait and while others are at the backend; after a restart every received request has one record', { skip: mountSkip(EXT4_TOOLS) }, async (t) => {
  const disk = await ext4(t, 32)
  const up = await slowBackend(300)
  t.teardown(up.close)
  const auditDir = join(disk.dir, 'audit')
  const file = await configFile(t, up.url, auditDir, { journalTimeoutMs: 3000, maxBacklog: 100_000 })
  const gw = await spawnGateway(file)
  t.teardown(() => { gw.proc.kill('SIGKILL') })
  const l = load(gw.url, 'eio', 20)
  await until('load to build up', () => up.requests.length >= 60)
  disk.shutdown()
  const receivedAtShutdown = up.requests.length
  // Some requests are at the backend (their final records cannot be written), others now wait on the journal.
  await until('readyz to say why', async () => {
    const r = await fetch(gw.adminUrl + '/readyz').catch(() => null)
    if (r === null || r.status !== 503) return false
    return ((await r.json()) as { reasons: string[] }).reasons.some((s) => /EIO|has not returned/.test(s))
  })
  await delay(500)
  const receivedWhileDead = up.requests.length - receivedAtShutdown
  gw.proc.kill('SIGKILL')
  await gw.proc.exited
  const answered = await l.stop()

  disk.remount()
  const again = await spawnGateway(file)
  t.teardown(() => { again.proc.kill('SIGKILL') })
  again.proc.kill('SIGTERM')
  t.equal(await again.proc.exited, 0)
  const x = await tally(auditDir, up, answered)
  report(t, 'dead disk + SIGKILL', x)
  t.comment(`requests reaching the backend after the disk died: ${receivedWhileDead} (journal entries durable before it died, at most one commit's worth)`)
  t.ok(receivedWhileDead <= 20, 'nothing new is forwarded once the journal cannot be written')
  t.same(x.missing, [], '0 missing')
  t.same(x.duplicated, [], '0 duplicated')
  const v = await verifyDir(auditDir)
  t.equal(v.ok, true, `audit verify: ${JSON.stringify(v.problem ?? 'ok')}`)
})
