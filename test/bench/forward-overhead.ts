/*
 * What the gateway adds to a request: the same load sent straight to the mock accelerator and through a
 * spawned gateway in front of it, side by side in one run. Prints p50/p99 per path and the ratio.
 *
 *   npm run build && node --import tsx test/bench/forward-overhead.ts [--requests 2000] [--concurrency 16]
 *
 * The mock answers with no simulated latency (--ttft-ms 0 --itl-ms 0), so the figures are the proxy's own cost
 * (the full pipeline: key lookup, GeoIP, policy, limits, forwarding, usage reading, audit).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { baseConfig } from '../helpers/gateway.js'
import { spawnGateway, spawnMock } from '../helpers/process.js'

const { values } = parseArgs({ options: { requests: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '16' } } })
const REQUESTS = Number(values.requests)
const CONCURRENCY = Number(values.concurrency)

interface Case { name: string, path: string, body: string }
const CASES: Case[] = [
  { name: 'chat, JSON', path: '/v1/chat/completions', body: JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hello' }], max_tokens: 16 }) },
  { name: 'chat, SSE stream', path: '/v1/chat/completions', body: JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hello' }], max_tokens: 16, stream: true }) }
]

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

async function load (base: string, c: Case): Promise<{ p50: number, p99: number, rps: number }> {
  const pool = new Pool(base, { connections: CONCURRENCY })
  const headers = { authorization: 'Bearer test-key-tier1', 'content-type': 'application/json' }
  const one = async (): Promise<number> => {
    const t0 = performance.now()
    const res = await pool.request({ path: c.path, method: 'POST', headers, body: c.body })
    await res.body.text()
    if (res.statusCode !== 200) throw new Error(`${base}${c.path}: ${res.statusCode}`)
    return performance.now() - t0
  }
  for (let i = 0; i < 200; i++) await one() // warm-up: JIT, connections
  const times: number[] = []
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < REQUESTS) times.push(await one())
  }))
  const wall = performance.now() - t0
  await pool.close()
  times.sort((a, b) => a - b)
  return { p50: pct(times, 0.5), p99: pct(times, 0.99), rps: (times.length / wall) * 1000 }
}

const dir = await mkdtemp(join(tmpdir(), 'geogate-bench-'))
const mock = await spawnMock(['--ttft-ms', '0', '--itl-ms', '0'])
const file = join(dir, 'geogate.yaml')
await writeFile(file, JSON.stringify(baseConfig(mock.url, {
  server: { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, trustedProxies: [] },
  audit: { dir: join(dir, 'audit'), scope: 'all' },
  log: { level: 'info' }
})))
const gw = await spawnGateway(file)
try {
  process.stdout.write(`forward overhead: ${REQUESTS} requests, concurrency ${CONCURRENCY}, node ${process.version}\n`)
  process.stdout.write('case               path      p50 ms   p99 ms     req/s\n')
  for (const c of CASES) {
    const direct = await load(mock.url, c)
    const via = await load(gw.url, c)
    const row = (path: string, r: { p50: number, p99: number, rps: number }): string =>
      `${c.name.padEnd(18)} ${path.padEnd(8)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)} ${r.rps.toFixed(0).padStart(9)}\n`
    process.stdout.write(row('direct', direct) + row('gateway', via))
    process.stdout.write(`${''.padEnd(18)} ratio    ${(via.p50 / direct.p50).toFixed(2).padStart(7)}x ${(via.p99 / direct.p99).toFixed(2).padStart(7)}x ${(via.rps / direct.rps).toFixed(2).padStart(8)}x\n`)
  }
} finally {
  gw.proc.kill('SIGTERM')
  mock.proc.kill('SIGTERM')
  await Promise.all([gw.proc.exited, mock.proc.exited])
  await rm(dir, { recursive: true, force: true })
}
