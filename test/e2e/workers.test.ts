/*
 * `geogate serve --workers 2`, as a whole process: both workers take traffic and write their own chains, /metrics
 * adds them up, SIGHUP reaches both, a killed worker comes back and its in-flight journal becomes `unknown`
 * records, SIGTERM drains both and every request is recorded.
 */
import t from 'tap'
import { request as httpRequest } from 'node:http'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { baseConfig, startUpstream } from '../helpers/gateway.js'
import { spawnGateway, runCli } from '../helpers/process.js'
import { testRedis, uniquePrefix, deletePrefix, waitFor } from '../helpers/ops.js'
import { readRecords } from '../../src/audit/read.js'
import type { InteractionRecord } from '../../src/audit/types.js'

/** One request on a connection of its own (the cluster hands out connections, not requests). */
async function call (url: string, id: string, hold: boolean): Promise<number> {
  const body = JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: hold ? 'hold' : 'hi' }] })
  return await new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/v1/chat/completions`, {
      method: 'POST',
      agent: false,
      headers: { authorization: 'Bearer test-key-tier1', 'content-type': 'application/json', 'x-request-id': id, connection: 'close' }
    }, (res) => { res.resume(); res.on('end', () => { resolve(res.statusCode ?? 0) }) })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('serve --workers 2', async (t) => {
  const redis = await testRedis()
  const prefix = uniquePrefix('workers')
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const up = await startUpstream((_req, res, body) => {
    const answer = (): void => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } }))
    }
    if (body.includes('"hold"')) void held.then(answer)
    else answer()
  })
  const dir = await mkdtemp(join(tmpdir(), 'geogate-workers-'))
  const auditDir = join(dir, 'audit')
  const file = join(dir, 'geogate.json')
  await writeFile(file, JSON.stringify(baseConfig(up.url, {
    server: { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, trustedProxies: [], shutdownGraceMs: 5000 },
    redis: { url: redis.url, keyPrefix: prefix },
    audit: { dir: auditDir, scope: 'all', writerId: 'gw-a', fsyncIntervalMs: 5 },
    log: { level: 'info' }
  })))
  const gw = await spawnGateway(file, ['--workers', '2'])
  t.teardown(async () => {
    release()
    gw.proc.kill('SIGKILL')
    await up.close()
    await deletePrefix(redis.url, prefix)
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const workerPid = (id: number): number | undefined =>
    gw.proc.lines.filter((l) => l.msg === 'worker listening' && l.worker === id).map((l) => Number(l.pid)).at(-1)
  const admin = { authorization: 'Bearer test-admin' }

  // Traffic reaches both workers.
  const statuses: number[] = []
  for (let i = 0; i < 16; i++) statuses.push(await call(gw.url, `plain-${i}`, false))
  t.same([...new Set(statuses)], [200], 'every request answered')
  const servedBy = new Set(gw.proc.lines.filter((l) => l.msg === 'request' && String(l.reqId).startsWith('plain-')).map((l) => l.worker))
  t.same([...servedBy].sort(), [1, 2], 'both workers served requests')

  // /metrics on the admin plane (worker 1) counts both workers' requests.
  const metrics = await fetch(`${gw.adminUrl}/metrics`, { headers: admin })
  t.equal(metrics.status, 200)
  const text = await metrics.text()
  const total = [...text.matchAll(/^geogate_requests_total\{[^}]*status="200"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
  t.equal(total, 16, '/metrics aggregates every worker')

  // SIGHUP on the primary reaches every worker.
  gw.proc.kill('SIGHUP')
  await waitFor(() => new Set(gw.proc.lines.filter((l) => l.msg === 'configuration reloaded').map((l) => l.worker)).size === 2, 10_000, 'both workers to reload')
  t.pass('both workers re-read the file on SIGHUP')
  // POST /admin/reload reaches worker 1 (the admin plane), and the other worker through the shared store.
  const reloaded = await fetch(`${gw.adminUrl}/admin/reload`, { method: 'POST', headers: admin })
  t.equal(reloaded.status, 200)
  const reloadsOf = (id: number): number => gw.proc.lines.filter((l) => l.msg === 'configuration reloaded' && l.worker === id).length
  await waitFor(() => reloadsOf(1) === 2 && reloadsOf(2) === 2, 10_000, 'both workers to reload again')
  t.pass('a reload through the admin API reaches every worker')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same([reloadsOf(1), reloadsOf(2)], [2, 2], 'and only once each (no relay loop)')

  // Requests held at the backend on both workers; worker 2 is killed while it holds some.
  const heldCalls = Array.from({ length: 8 }, (_v, i) => call(gw.url, `held-${i}`, true).catch(() => 0))
  await waitFor(() => up.requests.filter((r) => r.body.includes('"hold"')).length === 8, 10_000, 'the held requests to reach the backend')
  const journal = join(auditDir, 'gw-a-w2.inflight.jsonl')
  await waitFor(async () => (await readFile(journal, 'utf8').catch(() => '')).includes('held-'), 5000, 'worker 2 to journal its in-flight requests')
  const pid2 = workerPid(2)
  if (pid2 === undefined) throw new Error('no pid for worker 2')
  process.kill(pid2, 'SIGKILL')
  await waitFor(() => workerPid(2) !== pid2, 15_000, 'worker 2 to be started again')
  t.pass('a killed worker is started again')
  release()
  const heldStatuses = await Promise.all(heldCalls)
  t.ok(heldStatuses.includes(200), 'the requests held on worker 1 complete')
  t.ok(heldStatuses.includes(0), 'the requests held on worker 2 were cut by its death')

  // SIGTERM: both drain and exit, the primary exits 0.
  gw.proc.kill('SIGTERM')
  t.equal(await gw.proc.exited, 0, 'the primary exits 0')
  t.equal(gw.proc.lines.filter((l) => l.msg === 'geogate stopped' && l.worker !== undefined).length, 2, 'both workers stopped cleanly')

  const records = new Map<string, InteractionRecord>()
  const chains = new Set<string>()
  for await (const { record, segment } of readRecords(auditDir, { kind: 'interaction' })) {
    if (record.kind !== 'interaction') continue
    records.set(record.requestId, record)
    chains.add(segment.writer)
  }
  t.same([...chains].sort(), ['gw-a-w1', 'gw-a-w2'], 'one chain per worker, named by the writer id and the worker')
  for (let i = 0; i < 16; i++) t.match(records.get(`plain-${i}`), { outcome: 'ok', status: 200 }, `plain-${i} recorded`)
  for (let i = 0; i < 8; i++) {
    const r = records.get(`held-${i}`)
    t.ok(r !== undefined, `held-${i} recorded`)
    t.equal(r?.outcome, heldStatuses[i] === 200 ? 'ok' : 'unknown', `held-${i}: ${heldStatuses[i] === 200 ? 'completed' : 'in flight on the killed worker: unknown'}`)
  }
  const verify = await runCli(['audit', 'verify', auditDir])
  t.equal(verify.code, 0, `audit verify accepts both chains: ${verify.stdout}${verify.stderr}`)
})

t.test('more than one worker without Redis is refused with a clear error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-workers-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'geogate.json')
  await writeFile(file, JSON.stringify(baseConfig('http://127.0.0.1:9', { audit: { dir: join(dir, 'audit') } })))
  const res = await runCli(['serve', '--config', file, '--workers', '2'])
  t.equal(res.code, 1)
  t.match(res.stderr, /2 workers need redis/)
})
