/*
 * What each proxy costs, side by side in one run (issue 12): direct to the backend, a bare node:http + undici
 * proxy (the yardstick every ratio divides by), fastify + @fastify/reply-from, nginx with geoip2 + limit_req,
 * the Portkey gateway, and geogate with its full pipeline and with each part switched off in turn.
 *
 *   npm run build && npm run bench -- gateway [--rounds 3] [--duration 4] [--streams 2000] [--json FILE] …
 *   (--only fastify,nginx,portkey,gg-memory,…,gg-workers2,gg-workers2-1core picks rows besides direct, bare and geogate;
 *   bare-streamed, the bare proxy piping small bodies instead of reading them whole, only when named; --keep keeps the temp dir;
 *   --no-paired skips the side-by-side phase)
 *
 *   core 0: the proxy under test (each one `taskset -c 0`; only one is under load at a time, but in the side-by-side
 *           phase: each row and the bare proxy at once, so the two share whatever the machine does meanwhile)
 *   core 1: this process (fixed-rate and SSE clients), wrk, the mock backends
 *   cores 0,1: gg-workers2 only (`geogate serve --workers 2` on two cores), beside the load; gg-workers2-1core
 *           holds the same two workers to core 0, to price the workers themselves apart from sharing the load's core
 *
 * geogate runs only as a process, `node dist/cli/index.js serve --config FILE`, from a config generated here.
 * Figures are medians over the rounds; "added" latencies are the row's percentile minus the direct row's in the
 * same round; ratios divide by the bare proxy's figure in the same round. For geogate rows the audit journal wait
 * (geogate_audit_journal_wait_seconds) is read from the admin plane's /metrics before and after the throughput and
 * concurrency-1 phases, its quantiles interpolated within buckets. CPU and RSS add up a process and its children.
 * Every row is warmed up until its CPU per request settles (--warmup s per pass, at most --warmup-max passes) and
 * loaded again for --rewarm s right before each throughput phase; the machine's steal time over each throughput
 * phase is recorded (a VM's host taking its cores moves every figure).
 */
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, hostname, loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { deletePrefix, freePort, sharedRedisUrl } from '../helpers/redis.js'
import { CLI, ROOT } from '../helpers/process.js'
import { openLoop, sse, writeWrkScript, wrk, type Callers, type ClosedLoop, type Endpoint, type OpenLoop, type SseRun } from './gateway/load.js'
import { histogramDelta, histogramQuantile, parseHistogram, scrape, type Histogram } from './gateway/histogram.js'
import { cpuMicros, have, memory, pinSelf, spawnPinned, truncateLog, waitReady, warningReasons, type Pinned } from './gateway/procs.js'
import { ADMIN_TOKEN, allowedByDefaultGeo, apiKeys, geogateConfig, nginxMockConf, nginxProxyConf, writeGeo, writeText, type GeogateVariant } from './gateway/setup.js'

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    'warmup-max': { type: 'string', default: '8' },
    rewarm: { type: 'string', default: '1' },
    connections: { type: 'string', default: '64' },
    callers: { type: 'string', default: '4096' },
    keys: { type: 'string', default: '64' },
    'city-networks': { type: 'string', default: '300000' },
    rate: { type: 'string' },
    streams: { type: 'string', default: '2000' },
    'sse-chunks': { type: 'string', default: '8' },
    'sse-itl-ms': { type: 'string', default: '200' },
    'sse-ramp-ms': { type: 'string', default: '1000' },
    'stall-ms': { type: 'string', default: '1000' },
    /** the JSON request's size: its message padded with text to about this many bytes (0: a 90-byte body) */
    'prompt-bytes': { type: 'string', default: '0' },
    only: { type: 'string' },
    workers: { type: 'string' },
    'workers-cores': { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    /** skip the side-by-side phase (each one-core row loaded at once with the bare proxy) */
    'no-paired': { type: 'boolean', default: false },
    'proxy-core': { type: 'string', default: '0' },
    'load-core': { type: 'string', default: '1' }
  }
})
const num = (k: keyof typeof opt): number => {
  const n = Number(opt[k])
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a number, got "${String(opt[k])}"`)
  return n
}
const ROUNDS = Math.max(1, num('rounds'))
const DURATION = Math.max(1, num('duration'))
const WARMUP = num('warmup')
/** warm-up passes of WARMUP s at most, until a row's CPU µs per request settles (see warmUp) */
const WARMUP_MAX = Math.max(1, num('warmup-max'))
/** seconds of unmeasured load right before each row's throughput phase (its JIT state after the other phases) */
const REWARM = num('rewarm')
const CONNECTIONS = num('connections')
const STREAMS = num('streams')
const SSE_CHUNKS = num('sse-chunks')
const SSE_ITL = num('sse-itl-ms')
const SSE_RAMP = num('sse-ramp-ms')
const STALL_MS = num('stall-ms')
const PROXY_CORE = num('proxy-core')
const LOAD_CORE = num('load-core')
const WORKERS_CORES = opt['workers-cores'] ?? `${PROXY_CORE},${LOAD_CORE}`
const JOURNAL_WAIT = 'geogate_audit_journal_wait_seconds'
const PAIRED = opt['no-paired'] !== true
const POOL = Math.max(256, STREAMS + 64) // upstream connections of every Node proxy: enough for every stream
const PORTKEY_DIR = join(ROOT, 'test', 'bench', '.portkey')
const PORTKEY_ENTRY = join(PORTKEY_DIR, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js')
const NGINX_GEOIP2 = ['/usr/share/nginx/modules/ngx_http_geoip2_module.so', '/usr/lib/nginx/modules/ngx_http_geoip2_module.so'].find((p) => existsSync(p))

const JSON_BODY = jsonBody(num('prompt-bytes'))
/** The JSON request, its message padded with prose to about `bytes` (a prompt with context, as real callers send). */
function jsonBody (bytes: number): string {
  const small = JSON.stringify({ model: 'bench-json', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16 })
  if (bytes <= small.length) return small
  const pad = 'The quick brown fox jumps over the lazy dog. '.repeat(Math.ceil((bytes - small.length) / 45)).slice(0, bytes - small.length)
  return JSON.stringify({ model: 'bench-json', messages: [{ role: 'user', content: pad + 'Say hello.' }], max_tokens: 16 })
}
// the mock streams max_tokens chunks: SSE_CHUNKS for the measured streams, 1 for the pass that opens connections
const sseBody = (chunks: number): string => JSON.stringify({ model: 'bench-sse', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: chunks, stream: true })
const SSE_BODY = sseBody(SSE_CHUNKS)
const SSE_WARM_BODY = sseBody(1)
const PATH = '/v1/chat/completions'

/** The write-ahead journal wait over one phase, from the /metrics histogram (bucket-interpolated quantiles). */
interface JournalWait { count: number, p50us: number | null, p99us: number | null, meanUs: number | null }
interface Round {
  load: number[]
  /** the machine's steal time over the throughput phase, % of all CPU time (a VM's host taking the cores) */
  stealPct: number | null
  max: ClosedLoop
  cpuUsPerReq: number | null
  rssSteady: number | null
  c1: ClosedLoop
  rate: OpenLoop
  sse: SseRun | null
  /** null for rows without /metrics, or when a scrape failed */
  journalMax: JournalWait | null
  journalC1: JournalWait | null
  /** CPU µs/req over the bare proxy's, both loaded at once on the proxy core (null: not measured for this row) */
  pairedCpuRatio: number | null
  /** gg-workers2-1core: CPU µs/req over the one-worker full pipeline's, both loaded at once on the proxy core */
  pairedOneWorkerRatio?: number | null
}
interface Row {
  id: string
  label: string
  json: Endpoint
  sse: Endpoint
  callers: Callers
  proc: Pinned | null
  /** the admin plane's /metrics (geogate rows) */
  metricsUrl?: string
  skipped?: string
  /** why the SSE phase is not run for this row, when it cannot stream */
  sseSkipped?: string
  rssIdle?: number
  rssPeak?: number
  /** warm-up passes run, the CPU µs per request of the last two (null: no process to read), and whether they agreed */
  warmup?: { passes: number, seconds: number, cpuUsPerReq: Array<number | null>, settled: boolean }
  rounds: Round[]
  script?: string
  /** pinned to the proxy core alone (every row but gg-workers2): can be measured side by side with the bare proxy */
  oneCore: boolean
  /** geogate serve --workers N (rows that set it): each worker warms up on its share of the traffic */
  workers?: number
}

const notes: string[] = []
/**
 * The bare proxy's CPU µs per request at each round's start (its throughput phase) and end (loaded once more): a
 * round spans every row, and the VM's speed can move within it (see docs/performance-log.md, "Warm-up, and the ratios measured warm").
 */
const bareDrift: Array<{ round: number, startUs: number, endUs: number }> = []
/** start and end further apart than this (either way): the round's sequential ratios are flagged */
const DRIFT_FLAG = 1.25
const note = (s: string): void => { notes.push(s); process.stdout.write(`note: ${s}\n`) }
const say = (s: string): void => { process.stdout.write(s + '\n') }

/**
 * Two rows loaded at once on the proxy core, half the connections each: their CPU µs per request, in that order.
 * Whatever the machine does meanwhile, it does to both, so their ratio holds where rows measured in turn drift.
 */
async function sideBySide (a: Row, b: Row): Promise<[number, number]> {
  if (a.proc === null || b.proc === null) throw new Error('side by side needs two processes')
  const a0 = cpuMicros(a.proc.pid)
  const b0 = cpuMicros(b.proc.pid)
  const half = Math.max(1, Math.floor(CONNECTIONS / 2))
  const [ma, mb] = await Promise.all([wrk(LOAD_CORE, a.json.url, a.script ?? '', half, DURATION), wrk(LOAD_CORE, b.json.url, b.script ?? '', half, DURATION)])
  const ca = (cpuMicros(a.proc.pid) - a0) / Math.max(1, ma.requests)
  const cb = (cpuMicros(b.proc.pid) - b0) / Math.max(1, mb.requests)
  truncateLog(a.proc)
  truncateLog(b.proc)
  return [ca, cb]
}

/**
 * Load a row until it is warm: passes of WARMUP s (N times as long for N workers, each seeing 1/N of the requests)
 * until two in a row cost the same CPU per request within 10 %, at most WARMUP_MAX passes. A fresh Node process
 * needs several seconds of load before its JIT has compiled the hot path (measured here: the bare proxy 243, 152,
 * 95, 82 µs per request in four 3 s passes; geogate 1189, 549, 276, 332, 253 µs): a row measured earlier in that
 * ramp than another would be compared cold against warm.
 */
async function warmUp (row: Row): Promise<{ passes: number, seconds: number, cpuUsPerReq: Array<number | null>, settled: boolean }> {
  const seconds = WARMUP * (row.workers ?? 1)
  const costs: Array<number | null> = []
  let settled = false
  for (let pass = 1; pass <= WARMUP_MAX && !settled; pass++) {
    const { cost } = await loadRow(row, CONNECTIONS, seconds)
    costs.push(cost)
    const prev = costs[costs.length - 2]
    settled = cost === null || (prev != null && Math.abs(cost - prev) <= 0.1 * prev)
  }
  return { passes: costs.length, seconds, cpuUsPerReq: costs.slice(-2), settled }
}

/** One closed-loop phase on a row and the CPU µs per request its process (and children) spent on it (null: none). */
async function loadRow (row: Row, connections: number, seconds: number): Promise<{ m: ClosedLoop, cost: number | null }> {
  const before = row.proc === null ? 0 : cpuMicros(row.proc.pid)
  const m = await wrk(LOAD_CORE, row.json.url, row.script ?? '', connections, seconds)
  return { m, cost: row.proc === null ? null : (cpuMicros(row.proc.pid) - before) / Math.max(1, m.requests) }
}

/** The machine's CPU time from /proc/stat (all cores, in ticks): total and steal. */
function cpuTimes (): { total: number, steal: number } | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? []
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
    return { total, steal: f[7] ?? 0 }
  } catch { return null }
}

/** Steal over an interval, as % of all CPU time then: a VM's host running something else on its cores. */
function stealShare (a: { total: number, steal: number } | null, b: { total: number, steal: number } | null): number | null {
  if (a === null || b === null || b.total <= a.total) return null
  return 100 * (b.steal - a.steal) / (b.total - a.total)
}

function median (xs: Array<number | null | undefined>): number | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 === 1 ? (v[m] ?? null) : ((v[m - 1] ?? 0) + (v[m] ?? 0)) / 2
}

async function journalHistogram (row: Row): Promise<Histogram | null> {
  if (row.metricsUrl === undefined) return null
  const text = await scrape(row.metricsUrl, ADMIN_TOKEN)
  return text === null ? null : parseHistogram(text, JOURNAL_WAIT)
}

function journalWait (before: Histogram | null, after: Histogram | null): JournalWait | null {
  const h = before === null || after === null ? null : histogramDelta(before, after)
  if (h === null) return null
  const us = (x: number): number | null => (Number.isFinite(x) ? x * 1e6 : null)
  return { count: h.count, p50us: us(histogramQuantile(0.5, h)), p99us: us(histogramQuantile(0.99, h)), meanUs: h.count > 0 ? (h.sum / h.count) * 1e6 : null }
}

function endpoint (url: string, body: string, headers: Record<string, string> = {}): Endpoint {
  return { url, path: PATH, headers, body }
}

async function main (): Promise<void> {
  if (!have('wrk')) throw new Error('wrk is not installed (Debian: apt-get install wrk)')
  if (!have('taskset')) throw new Error('taskset is not installed (Debian: util-linux)')
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)
  const loadBefore = loadavg()
  pinSelf(LOAD_CORE)
  const dir = await mkdtemp(join(tmpdir(), 'geogate-bench-gateway-'))
  const procs: Pinned[] = []
  const redisPrefix = `ggbench:${randomBytes(4).toString('hex')}:`
  // Redis is a dependency like the mock backends: on the load core, never beside the proxy under test. Without
  // REDIS_URL the bench starts its own redis-server there (the machine's may run on any core).
  let redisUrl = sharedRedisUrl()
  let redisOk = false
  try {
    if (process.env.REDIS_URL === undefined && have('redis-server')) {
      const redisPort = await freePort()
      procs.push(spawnPinned('redis', LOAD_CORE, 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], join(dir, 'redis.log')))
      redisUrl = `redis://127.0.0.1:${redisPort}`
      for (let i = 0; i < 50 && !(await pingRedis(redisUrl)); i++) await new Promise((resolve) => setTimeout(resolve, 100))
      note(`Redis: a redis-server of the bench's own on core ${LOAD_CORE} (set REDIS_URL to use another)`)
    } else {
      note(`Redis: ${redisUrl} (not pinned by the bench)`)
    }
    const t0 = performance.now()
    const geo = await writeGeo(dir, num('city-networks'), num('callers'))
    const keys = apiKeys(num('keys'))
    const mixed: Callers = { addrs: geo.mixed, keys }
    const usOnly: Callers = { addrs: geo.us, keys }
    const defaultGeo: Callers = { addrs: await allowedByDefaultGeo(geo.mixed), keys }
    say(`gateway bench: ${num('city-networks')} City networks + 50k Anonymous-IP written in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
      `${mixed.addrs.length} callers (${usOnly.addrs.length} US-only), ${keys.length} keys; JSON requests of ${Buffer.byteLength(JSON_BODY)} bytes; node ${process.version}; ${ROUNDS} rounds of ${DURATION} s`)

    // ---- backends, on the load core
    const ssePort = await freePort()
    const sseMock = spawnPinned('sse mock', LOAD_CORE, process.execPath, [join(ROOT, 'test/bench/gateway/mock-backend.mjs'), String(ssePort), String(SSE_ITL)], join(dir, 'sse-mock.log'))
    procs.push(sseMock)
    const sseUrl = `http://127.0.0.1:${ssePort}`
    let jsonUrl = sseUrl
    const nginx = have('nginx')
    if (nginx) {
      const port = await freePort()
      const conf = writeText(join(dir, 'nginx-mock.conf'), nginxMockConf(dir, port))
      procs.push(spawnPinned('nginx mock', LOAD_CORE, 'nginx', ['-e', join(dir, 'nginx-mock.stderr.log'), '-p', dir, '-c', conf], join(dir, 'nginx-mock.log')))
      jsonUrl = `http://127.0.0.1:${port}`
    } else {
      note('nginx not installed: the JSON backend is the node mock too (apt-get install nginx-light)')
    }
    const probe = { 'content-type': 'application/json', authorization: `Bearer ${keys[0] ?? ''}`, 'x-forwarded-for': mixed.addrs[0] ?? '' }
    await waitReady(procs.at(-1) ?? null, jsonUrl + PATH, probe, JSON_BODY)
    await waitReady(sseMock, sseUrl + PATH, probe, JSON_BODY)

    // ---- the rows
    const rows: Row[] = []
    const add = (id: string, label: string, callers: Callers, proc: Pinned | null, json: Endpoint, sseEp: Endpoint, skipped?: string): void => {
      rows.push({ id, label, json, sse: sseEp, callers, proc, skipped, rounds: [], oneCore: true })
      if (proc !== null) procs.push(proc)
    }
    const only = opt.only?.split(',')
    const wanted = (id: string): boolean => only === undefined || id === 'direct' || id === 'bare' || id === 'geogate' || only.includes(id)
    const SSE_ROUTE = { 'x-bench-upstream': 'sse' }
    add('direct', 'direct to the mock backend', mixed, null, endpoint(jsonUrl, JSON_BODY), endpoint(sseUrl, SSE_BODY))
    const nodeProxy = async (id: string, label: string, script: string, ...extra: string[]): Promise<void> => {
      const port = await freePort()
      const p = spawnPinned(label, PROXY_CORE, process.execPath, [join(ROOT, 'test/bench/gateway', script), String(port), jsonUrl, sseUrl, String(POOL), ...extra], join(dir, `${id}.log`))
      const url = `http://127.0.0.1:${port}`
      add(id, label, mixed, p, endpoint(url, JSON_BODY), endpoint(url, SSE_BODY, SSE_ROUTE))
    }
    await nodeProxy('bare', 'bare node:http + undici Pool proxy', 'bare-proxy.mjs')
    // the yardstick before it read small bodies whole (docs/performance-log.md, "The yardstick"): only when asked for by name
    if (only?.includes('bare-streamed') === true) await nodeProxy('bare-streamed', 'bare proxy, bodies streamed', 'bare-proxy.mjs', 'streamed')
    if (wanted('fastify')) await nodeProxy('fastify', 'fastify + @fastify/reply-from', 'fastify-proxy.mjs')
    if (wanted('nginx')) {
      const label = 'nginx + geoip2 + limit_req'
      if (!nginx || NGINX_GEOIP2 === undefined) {
        add('nginx', label, mixed, null, endpoint('', ''), endpoint('', ''), 'nginx or its geoip2 module is not installed (apt-get install nginx-light libnginx-mod-http-geoip2)')
      } else {
        const port = await freePort()
        const conf = writeText(join(dir, 'nginx-proxy.conf'), nginxProxyConf(dir, NGINX_GEOIP2, port, jsonUrl, sseUrl, geo))
        const p = spawnPinned(label, PROXY_CORE, 'nginx', ['-e', join(dir, 'nginx-proxy.stderr.log'), '-p', dir, '-c', conf], join(dir, 'nginx-proxy.log'))
        const url = `http://127.0.0.1:${port}`
        add('nginx', label, mixed, p, endpoint(url, JSON_BODY), endpoint(url, SSE_BODY, SSE_ROUTE))
      }
    }
    if (wanted('portkey')) {
      const reason = installPortkey()
      const label = `Portkey gateway ${portkeyVersion() ?? ''}`.trim()
      if (reason !== null) {
        add('portkey', label, mixed, null, endpoint('', ''), endpoint('', ''), reason)
      } else {
        const port = await freePort()
        const p = spawnPinned(label, PROXY_CORE, process.execPath, [PORTKEY_ENTRY, `--port=${port}`, '--headless'], join(dir, 'portkey.log'), { cwd: PORTKEY_DIR, env: { NODE_ENV: 'production' } })
        const url = `http://127.0.0.1:${port}`
        const via = (upstream: string): Record<string, string> => ({ 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstream}/v1` })
        add('portkey', label, mixed, p, endpoint(url, JSON_BODY, via(jsonUrl)), endpoint(url, SSE_BODY, via(sseUrl)))
      }
    }
    redisOk = await pingRedis(redisUrl)
    if (!redisOk) note(`no Redis at ${redisUrl}: the geogate rows use in-memory limits`)
    const variants: Array<{ id: string, label: string, v: GeogateVariant, callers: Callers, workers?: number, cores?: string }> = [
      { id: 'geogate', label: 'geogate, full pipeline', v: { geo: 'generated', redis: redisOk, log: 'info', audit: 'all' }, callers: mixed },
      { id: 'gg-memory', label: 'geogate, in-memory limits (no Redis)', v: { geo: 'generated', redis: false, log: 'info', audit: 'all' }, callers: mixed },
      { id: 'gg-warn', label: 'geogate, log level warn', v: { geo: 'generated', redis: redisOk, log: 'warn', audit: 'all' }, callers: mixed },
      { id: 'gg-noaudit', label: 'geogate, no audit records', v: { geo: 'generated', redis: redisOk, log: 'info', audit: 'cross-border' }, callers: usOnly },
      { id: 'gg-geodefault', label: 'geogate, default geo db', v: { geo: 'default', redis: redisOk, log: 'info', audit: 'all' }, callers: defaultGeo },
      { id: 'gg-alloff', label: 'geogate, memory + warn + no audit', v: { geo: 'generated', redis: false, log: 'warn', audit: 'cross-border' }, callers: usOnly },
      { id: 'gg-workers2', label: `geogate, full pipeline, --workers 2 (cores ${WORKERS_CORES})`, v: { geo: 'generated', redis: redisOk, log: 'info', audit: 'all' }, callers: mixed, workers: 2 },
      { id: 'gg-workers2-1core', label: `geogate, full pipeline, --workers 2 (both on core ${PROXY_CORE})`, v: { geo: 'generated', redis: redisOk, log: 'info', audit: 'all' }, callers: mixed, workers: 2, cores: String(PROXY_CORE) }
    ]
    for (const { id, label, v, callers, workers, cores } of variants) {
      if (!wanted(id)) continue
      if (workers !== undefined && workers > 1 && !redisOk) {
        add(id, label, callers, null, endpoint('', ''), endpoint('', ''), 'more than one worker needs Redis, and there is none')
        continue
      }
      const port = await freePort()
      const adminPort = await freePort()
      const file = writeText(join(dir, `${id}.json`), geogateConfig(v, {
        port, adminPort, jsonUrl, sseUrl, connections: POOL, geo, auditDir: join(dir, `audit-${id}`), redisUrl, redisPrefix: `${redisPrefix}${id}:`, keys
      }))
      const n = workers === undefined ? opt.workers : String(workers)
      const args = [CLI, 'serve', '--config', file, ...(n === undefined ? [] : ['--workers', n])]
      const p = spawnPinned(label, cores ?? (workers === undefined ? PROXY_CORE : WORKERS_CORES), process.execPath, args, join(dir, `${id}.log`), { cwd: ROOT })
      const url = `http://127.0.0.1:${port}`
      add(id, label, callers, p, endpoint(url, JSON_BODY), endpoint(url, SSE_BODY, SSE_ROUTE))
      const row = rows.at(-1)
      if (row !== undefined) {
        row.metricsUrl = `http://127.0.0.1:${adminPort}/metrics`
        row.oneCore = workers === undefined || cores === String(PROXY_CORE)
        if (workers !== undefined) row.workers = workers
      }
    }
    if (PAIRED) {
      note(`"CPU × bare, side by side": each one-core row and the bare proxy loaded at the same time on core ${PROXY_CORE} (wrk -c${Math.max(1, Math.floor(CONNECTIONS / 2))} each), ` +
        'CPU µs/req of the row over the bare proxy\'s in that phase; on a shared, noisy machine it holds where rows measured one after another drift')
    }
    if (opt.workers !== undefined) note(`geogate serve --workers ${opt.workers} for every geogate row but gg-workers2 (all on core ${PROXY_CORE})`)
    if (rows.some((r) => r.id === 'gg-workers2' && r.skipped === undefined)) {
      note(`gg-workers2: geogate serve --workers 2 pinned to cores ${WORKERS_CORES} (taskset -c ${WORKERS_CORES}): two workers cannot share ` +
        `core ${PROXY_CORE} alone and be a test of workers, so they share core ${LOAD_CORE} with wrk, the mocks and this process; ` +
        'its req/s and latencies are not comparable with the one-core rows, its CPU µs per request is (summed over the primary and both workers), ' +
        'and "× 1 worker" divides it by the full-pipeline row\'s of the same round')
    }
    if (rows.some((r) => r.id === 'gg-workers2-1core' && r.skipped === undefined)) {
      note(`gg-workers2-1core: the same two workers held to core ${PROXY_CORE} alone, so nothing but the workers themselves (a primary, ` +
        'two audit chains, half the group commit each, the metrics gathered over IPC) differs from the full-pipeline row; "× 1 worker side by side": ' +
        'its CPU µs per request over the full pipeline\'s, both loaded at once on that core (wrk with half the connections each)')
    }
    note('CPU µs per request and RSS add up each proxy process and its children (a geogate primary and its workers)')

    // ---- ready, idle memory, warm-up
    for (const row of rows) {
      if (row.skipped !== undefined || row.proc === null) continue
      const h = { ...row.json.headers, 'content-type': 'application/json', authorization: `Bearer ${keys[0] ?? ''}`, 'x-forwarded-for': row.callers.addrs[0] ?? '' }
      try {
        await waitReady(row.proc, row.json.url + PATH, h, JSON_BODY)
      } catch (err) {
        row.skipped = `did not start: ${String(err).split('\n')[0] ?? ''}`
        say(String(err))
        await row.proc.stop()
        continue
      }
      try {
        await waitReady(row.proc, row.sse.url + PATH, { ...h, ...row.sse.headers }, SSE_BODY, 10_000)
      } catch (err) {
        const logged = row.proc.tail().split('\n').find((l) => /Error/.test(l))
        row.sseSkipped = `streaming request failed: ${String(err).split('\n')[0] ?? ''}${logged === undefined ? '' : `; its log: ${logged.trim()}`}`
        note(`${row.label}: no SSE figures (${row.sseSkipped})`)
      }
    }
    for (const row of rows) {
      if (row.skipped !== undefined) { note(`${row.label}: skipped (${row.skipped})`); continue }
      if (row.proc !== null) row.rssIdle = memory(row.proc.pid).rss
      row.script = join(dir, `${row.id}.lua`)
      writeWrkScript(row.script, row.json, row.callers)
      if (WARMUP > 0) {
        const w = row.warmup = await warmUp(row)
        const costs = w.cpuUsPerReq.map((x) => x?.toFixed(0) ?? '?').join(' → ')
        say(`warm-up        ${row.label.padEnd(40)} ${w.passes} × ${w.seconds} s${row.proc === null ? '' : `, CPU µs/req ${costs}`}`)
        if (!w.settled) note(`${row.label}: its CPU µs per request had not settled after ${w.passes} warm-up passes (${costs}); raise --warmup-max`)
      }
      if (row.proc !== null) truncateLog(row.proc)
    }
    const live = rows.filter((r) => r.skipped === undefined)

    // ---- rounds: every row in turn, phase by phase, so slow drift of the machine spreads over all rows
    let rate = opt.rate === undefined ? null : Number(opt.rate)
    const bare = live.find((r) => r.id === 'bare')
    for (let round = 1; round <= ROUNDS; round++) {
      const partial = new Map<Row, Partial<Round>>()
      for (const row of live) {
        // the other rows' phases (SSE above all) ran since this row's last load: a moment of its own load first
        if (REWARM > 0 && row.proc !== null) await wrk(LOAD_CORE, row.json.url, row.script ?? '', CONNECTIONS, REWARM * (row.workers ?? 1))
        // the scrapes fall outside the CPU readings, so they do not count against the row
        const jBefore = await journalHistogram(row)
        const stealBefore = cpuTimes()
        const { m: max, cost: cpu } = await loadRow(row, CONNECTIONS, DURATION)
        const stealPct = stealShare(stealBefore, cpuTimes())
        const rssSteady = row.proc === null ? null : memory(row.proc.pid).rss
        const journalMax = journalWait(jBefore, await journalHistogram(row))
        partial.set(row, { load: loadavg(), stealPct, max, cpuUsPerReq: cpu, rssSteady, journalMax, pairedCpuRatio: null })
        if (row.proc !== null) truncateLog(row.proc)
        say(`round ${round} max    ${row.label.padEnd(40)} ${max.rps.toFixed(0).padStart(7)} req/s${max.errors > 0 ? ` (${max.errors} errors)` : ''}`)
      }
      // side by side: each one-core proxy and the bare one loaded at once, half the connections each, on the same
      // core; whatever the machine does then, it does to both, so their CPU ratio holds where sequential rows drift
      if (PAIRED && bare?.proc != null) {
        for (const row of live) {
          if (row === bare || row.proc === null || !row.oneCore) continue
          const [cb, cr] = await sideBySide(bare, row)
          const p = partial.get(row)
          if (p !== undefined) p.pairedCpuRatio = cb > 0 ? cr / cb : null
          say(`round ${round} paired ${row.label.padEnd(40)} CPU ${cr.toFixed(0)} vs bare ${cb.toFixed(0)} µs/req (${(cr / cb).toFixed(2)}×)`)
        }
        // the two workers on one core against one worker on it, loaded at once
        const w2 = live.find((r) => r.id === 'gg-workers2-1core')
        const w1 = live.find((r) => r.id === 'geogate')
        if (w2?.proc != null && w1?.proc != null) {
          const [c1, c2] = await sideBySide(w1, w2)
          const p = partial.get(w2)
          if (p !== undefined) p.pairedOneWorkerRatio = c1 > 0 ? c2 / c1 : null
          say(`round ${round} paired ${w2.label.padEnd(40)} CPU ${c2.toFixed(0)} vs 1 worker ${c1.toFixed(0)} µs/req (${(c2 / c1).toFixed(2)}×)`)
        }
      }
      if (rate === null) {
        const gg = live.find((r) => r.id === 'geogate') ?? live.find((r) => r.id === 'bare')
        rate = Math.max(1, Math.round((partial.get(gg ?? live[0] as Row)?.max?.rps ?? 1000) / 2))
        say(`fixed rate for every row: ${rate} req/s (half of ${gg?.label ?? '?'}'s maximum in round 1)`)
      }
      for (const row of live) {
        const p = partial.get(row) ?? {}
        const jBefore = await journalHistogram(row)
        p.c1 = await wrk(LOAD_CORE, row.json.url, row.script ?? '', 1, DURATION)
        p.journalC1 = journalWait(jBefore, await journalHistogram(row))
        if (row.proc !== null) truncateLog(row.proc)
      }
      for (const row of live) {
        const p = partial.get(row) ?? {}
        p.rate = await openLoop(row.json, row.callers, rate, DURATION)
        if (row.proc !== null) truncateLog(row.proc)
      }
      for (const row of live) {
        const p = partial.get(row) ?? {}
        p.sse = STREAMS > 0 && row.sseSkipped === undefined ? await sse(row.sse, SSE_WARM_BODY, row.callers, STREAMS, SSE_RAMP, STALL_MS, 2 * SSE_RAMP + SSE_CHUNKS * SSE_ITL + 20_000) : null
        if (row.proc !== null) truncateLog(row.proc)
        if (p.sse != null && p.sse.failed > 0) {
          const why = row.proc === null ? [] : warningReasons(row.proc)
          note(`${row.label}, round ${round}: ${p.sse.failed} of ${p.sse.streams} streams failed (${Object.entries(p.sse.failures).map(([r, n]) => `${n} ${r}`).join(', ')})` +
            (why.length === 0 ? '' : `; its warnings and errors so far, most frequent first: ${why.map((w) => `${w.count} × ${w.reason}`).join('; ')}`))
        }
        row.rounds.push(p as Round)
      }
      // the bare proxy once more, at the round's end: did the machine's speed move while the round ran?
      if (bare?.proc != null) {
        const start = partial.get(bare)?.cpuUsPerReq ?? null
        if (REWARM > 0) await wrk(LOAD_CORE, bare.json.url, bare.script ?? '', CONNECTIONS, REWARM)
        const { cost: end } = await loadRow(bare, CONNECTIONS, DURATION)
        if (start !== null && end !== null) {
          bareDrift.push({ round, startUs: start, endUs: end })
          say(`round ${round} bare proxy at the round's start ${start.toFixed(0)}, at its end ${end.toFixed(0)} µs/req`)
        }
      }
      say(`round ${round} done (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`)
    }
    for (const row of live) if (row.proc !== null) row.rssPeak = memory(row.proc.pid).hwm

    report(rows, rate ?? 0, loadBefore)
  } finally {
    // the keys first: the bench's own redis-server is one of the processes stopped next
    if (redisOk) {
      const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
      client.on('error', () => {})
      try { await client.connect(); await deletePrefix(client, redisPrefix) } catch { /* Redis went away: nothing to clean */ }
      client.disconnect()
    }
    for (const p of procs.reverse()) await p.stop()
    if (opt.keep === true) say(`kept ${dir} (configs, logs, each process's warnings and errors in <row>.warnings.log, audit segments)`)
    else await rm(dir, { recursive: true, force: true })
  }
}

async function pingRedis (url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1000, retryStrategy: () => null })
  client.on('error', () => {}) // not listening yet: connect() rejects, and that is the answer
  try { await client.connect(); return (await client.ping()) === 'PONG' } catch { return false } finally { client.disconnect() }
}

/** Portkey goes into the bench's own folder (its own package.json), never into the project's dependencies. */
function installPortkey (): string | null {
  if (existsSync(PORTKEY_ENTRY)) return null
  say(`installing @portkey-ai/gateway into ${PORTKEY_DIR} …`)
  const r = spawnSync('npm', ['install', '--prefix', PORTKEY_DIR, '--no-audit', '--no-fund'], { stdio: 'inherit', timeout: 300_000 })
  if (r.status !== 0 || !existsSync(PORTKEY_ENTRY)) return `npm install --prefix test/bench/.portkey failed (${String(r.status ?? r.error)})`
  return null
}

function portkeyVersion (): string | null {
  const r = spawnSync(process.execPath, ['-p', `require(${JSON.stringify(join(PORTKEY_DIR, 'node_modules/@portkey-ai/gateway/package.json'))}).version`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

interface Summary {
  rps: number | null
  rpsRatio: number | null
  c1AddedP50us: number | null
  c1AddedP99us: number | null
  rateAddedP99us: number | null
  rateAchievedRps: number | null
  cpuUsPerReq: number | null
  cpuRatio: number | null
  /** 1e6 / cpuUsPerReq: what one core would serve with nothing else on it (robust when the machine is shared) */
  rpsPerCore: number | null
  rpsPerCoreRatio: number | null
  /** the median of the side-by-side phase's CPU ratios to the bare proxy */
  pairedCpuRatio: number | null
  rssIdleMB: number | null
  rssSteadyMB: number | null
  rssPeakMB: number | null
  sseAddedTtftP99us: number | null
  sseAddedGapP99us: number | null
  sseStalls: number | null
  sseFailed: number | null
  errors: number | null
  /** the write-ahead journal wait (fdatasync, group commit), bucket-interpolated from /metrics */
  journalC1P50us: number | null
  journalC1P99us: number | null
  journalMaxP50us: number | null
  journalMaxP99us: number | null
  /** c=1 added p50 minus the journal wait p50 at c=1: the added latency without the write-ahead wait */
  c1AddedP50MinusJournalUs: number | null
  /** CPU µs/req divided by the one-worker full pipeline's in the same round (gg-workers2, gg-workers2-1core) */
  cpuRatioToOneWorker: number | null
  /** gg-workers2-1core: the same ratio, both loaded at once on the proxy core */
  pairedOneWorkerRatio: number | null
}

function summarise (row: Row, direct: Row | undefined, bare: Row | undefined, oneWorker: Row | undefined): Summary {
  const per = <T>(f: (r: Round, i: number) => T): T[] => row.rounds.map(f)
  const d = (i: number): Round | undefined => direct?.rounds[i]
  const b = (i: number): Round | undefined => bare?.rounds[i]
  const sub = (a: number | undefined, c: number | undefined): number | null => (a === undefined || c === undefined ? null : a - c)
  const div = (a: number | null | undefined, c: number | null | undefined): number | null => (a == null || c == null || c === 0 ? null : a / c)
  return {
    rps: median(per((r) => r.max.rps)),
    rpsRatio: median(per((r, i) => div(r.max.rps, b(i)?.max.rps))),
    c1AddedP50us: median(per((r, i) => sub(r.c1.p50us, d(i)?.c1.p50us))),
    c1AddedP99us: median(per((r, i) => sub(r.c1.p99us, d(i)?.c1.p99us))),
    rateAddedP99us: median(per((r, i) => sub(r.rate.p99us, d(i)?.rate.p99us))),
    rateAchievedRps: median(per((r) => r.rate.achievedRps)),
    cpuUsPerReq: median(per((r) => r.cpuUsPerReq)),
    cpuRatio: median(per((r, i) => div(r.cpuUsPerReq, b(i)?.cpuUsPerReq))),
    rpsPerCore: median(per((r) => div(1e6, r.cpuUsPerReq))),
    rpsPerCoreRatio: median(per((r, i) => div(b(i)?.cpuUsPerReq, r.cpuUsPerReq))),
    pairedCpuRatio: median(per((r) => r.pairedCpuRatio)),
    rssIdleMB: row.rssIdle ?? null,
    rssSteadyMB: median(per((r) => r.rssSteady)),
    rssPeakMB: row.rssPeak ?? null,
    sseAddedTtftP99us: median(per((r, i) => sub(r.sse?.ttftP99us, d(i)?.sse?.ttftP99us))),
    sseAddedGapP99us: median(per((r, i) => sub(r.sse?.gapP99us, d(i)?.sse?.gapP99us))),
    sseStalls: median(per((r) => r.sse?.stalls)),
    sseFailed: median(per((r) => r.sse?.failed)),
    errors: median(per((r) => r.max.errors + r.c1.errors + r.rate.errors)),
    journalC1P50us: median(per((r) => r.journalC1?.p50us)),
    journalC1P99us: median(per((r) => r.journalC1?.p99us)),
    journalMaxP50us: median(per((r) => r.journalMax?.p50us)),
    journalMaxP99us: median(per((r) => r.journalMax?.p99us)),
    c1AddedP50MinusJournalUs: median(per((r, i) => sub(sub(r.c1.p50us, d(i)?.c1.p50us) ?? undefined, r.journalC1?.p50us ?? undefined))),
    cpuRatioToOneWorker: oneWorker === undefined ? null : median(per((r, i) => div(r.cpuUsPerReq, oneWorker.rounds[i]?.cpuUsPerReq))),
    pairedOneWorkerRatio: median(per((r) => r.pairedOneWorkerRatio))
  }
}

function report (rows: Row[], rate: number, loadBefore: number[]): void {
  const direct = rows.find((r) => r.id === 'direct')
  const bare = rows.find((r) => r.id === 'bare')
  const oneWorker = rows.find((r) => r.id === 'geogate' && r.skipped === undefined)
  const f = (x: number | null, digits = 0): string => (x === null ? '—' : x.toFixed(digits))
  const k = (x: number | null): string => (x === null ? '—' : x >= 10_000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0))
  const ratio = (x: number | null): string => (x === null ? '' : ` (${x.toFixed(2)}×)`)
  const head = ['system', 'req/s (× bare)', 'c=1 added p50 / p99 µs', `added p99 at ${rate}/s µs`, 'journal wait (write-ahead fdatasync) p50 / p99 µs: c=1 · max load', 'c=1 added p50 − journal wait p50 µs', 'CPU µs/req (× bare)', 'CPU × bare, side by side', 'req/s per core from CPU (× bare)', 'RSS idle / steady / peak MB', `SSE ×${STREAMS}: added TTFT p99 / gap p99 µs`, 'stalls', 'errors']
  const lines: string[][] = []
  const out: Array<Record<string, unknown>> = []
  for (const row of rows) {
    if (row.skipped !== undefined) {
      lines.push([row.label, `skipped: ${row.skipped}`])
      out.push({ id: row.id, label: row.label, skipped: row.skipped })
      continue
    }
    const s = summarise(row, direct, bare, row.id.startsWith('gg-workers2') ? oneWorker : undefined)
    const isDirect = row === direct
    const journal = s.journalC1P50us === null && s.journalMaxP50us === null
      ? '—'
      : `${f(s.journalC1P50us)} / ${f(s.journalC1P99us)} · ${f(s.journalMaxP50us)} / ${f(s.journalMaxP99us)}`
    const overloaded = s.rateAchievedRps !== null && s.rateAchievedRps < rate * 0.95 ? ` (held ${k(s.rateAchievedRps)}/s)` : ''
    lines.push([
      row.label,
      `${k(s.rps)}${isDirect ? '' : ratio(s.rpsRatio)}`,
      isDirect ? 'baseline' : `${f(s.c1AddedP50us)} / ${f(s.c1AddedP99us)}`,
      isDirect ? 'baseline' : `${f(s.rateAddedP99us)}${overloaded}`,
      journal,
      journal === '—' ? '—' : f(s.c1AddedP50MinusJournalUs),
      isDirect ? '—' : `${f(s.cpuUsPerReq)}${ratio(s.cpuRatio)}${s.cpuRatioToOneWorker === null ? '' : `; ${s.cpuRatioToOneWorker.toFixed(2)}× 1 worker`}${s.pairedOneWorkerRatio === null ? '' : `; ${s.pairedOneWorkerRatio.toFixed(2)}× 1 worker side by side`}`,
      s.pairedCpuRatio === null ? '—' : `${s.pairedCpuRatio.toFixed(2)}×`,
      isDirect ? '—' : `${k(s.rpsPerCore)}${ratio(s.rpsPerCoreRatio)}`,
      isDirect ? '—' : `${f(s.rssIdleMB)} / ${f(s.rssSteadyMB)} / ${f(s.rssPeakMB)}`,
      row.sseSkipped !== undefined ? 'streaming failed (see notes)' : isDirect ? 'baseline' : `${f(s.sseAddedTtftP99us)} / ${f(s.sseAddedGapP99us)}`,
      `${f(s.sseStalls)}${(s.sseFailed ?? 0) > 0 ? ` (${f(s.sseFailed)} failed)` : ''}`,
      f(s.errors)
    ])
    out.push({ id: row.id, label: row.label, median: s, rounds: row.rounds, sseSkipped: row.sseSkipped ?? null, rssIdleMB: row.rssIdle ?? null, rssPeakMB: row.rssPeak ?? null, warmup: row.warmup ?? null })
  }
  if (rows.some((r) => r.rounds.some((x) => x.journalC1 !== null || x.journalMax !== null))) {
    note(`journal wait: ${JOURNAL_WAIT} from each geogate row's admin /metrics, the difference over the phase (c=1; max load, wrk -c${CONNECTIONS}), ` +
      'quantiles bucket-interpolated as PromQL histogram_quantile() does, so they are only as fine as the buckets around them; ' +
      '"—" where the row records no journal entries (no audit records) or its /metrics did not answer')
  }
  if (direct !== undefined && direct.rounds.length > 0) {
    const m = (fn: (r: Round) => number | undefined): string => f(median(direct.rounds.map(fn)))
    note(`direct baseline (medians): c=1 p50 ${m((r) => r.c1.p50us)} µs, p99 ${m((r) => r.c1.p99us)} µs; at ${rate}/s p99 ${m((r) => r.rate.p99us)} µs; ` +
      `SSE TTFT p99 ${m((r) => r.sse?.ttftP99us)} µs, gap p99 ${m((r) => r.sse?.gapP99us)} µs (backend gap ${SSE_ITL} ms)`)
  }
  // fastify + reply-from does what the bare proxy does and more: a bare proxy costing more per request than it ran
  // slow (before 6b06537 the streamed yardstick did, in some hours; docs/performance-log.md, "The yardstick")
  const fastify = rows.find((r) => r.id === 'fastify' && r.skipped === undefined)
  const bareCpu = bare === undefined ? null : median(bare.rounds.map((r) => r.cpuUsPerReq))
  const fastifyCpu = fastify === undefined ? null : median(fastify.rounds.map((r) => r.cpuUsPerReq))
  if (bareCpu !== null && fastifyCpu !== null && fastifyCpu < bareCpu) {
    note(`the bare proxy cost more CPU per request than fastify + reply-from (${bareCpu.toFixed(0)} against ${fastifyCpu.toFixed(0)} µs), which does all it ` +
      'does and more: the yardstick ran slow in this run, so every sequential "× bare" figure is flattered; read the side-by-side column')
  }
  const drifted = bareDrift.filter((d) => Math.max(d.startUs, d.endUs) > DRIFT_FLAG * Math.min(d.startUs, d.endUs))
  if (drifted.length > 0) {
    note(`the machine's speed moved within ${drifted.map((d) => `round ${d.round} (the bare proxy ${d.startUs.toFixed(0)} → ${d.endUs.toFixed(0)} µs/req)`).join(', ')}: ` +
      'rows measured at different times in it are compared at different speeds, so read "× bare" from the side-by-side column, where both are loaded at once')
  }
  const loadAfter = loadavg()
  const machine = { cpu: cpus()[0]?.model ?? '?', cores: cpus().length, host: hostname(), node: process.version, kernel: spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim(), loadBefore, loadAfter }
  say('')
  say(`| ${head.join(' | ')} |`)
  say(`|${head.map(() => '---').join('|')}|`)
  for (const l of lines) say(`| ${l.join(' | ')} |`)
  say('')
  const during = rows.flatMap((r) => r.rounds.map((x) => x.load[0] ?? NaN)).filter(Number.isFinite)
  const steal = rows.flatMap((r) => r.rounds.map((x) => x.stealPct ?? NaN)).filter(Number.isFinite)
  const span = (during.length === 0 ? '' : `, 1-min load average ${Math.min(...during).toFixed(1)}–${Math.max(...during).toFixed(1)} during the rounds`) +
    (steal.length === 0 ? '' : `, steal ${Math.min(...steal).toFixed(0)}–${Math.max(...steal).toFixed(0)} % (median ${(median(steal) ?? 0).toFixed(0)} %) during the throughput phases`)
  say(`${new Date().toISOString()} · ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, load average ${loadBefore.map((x) => x.toFixed(1)).join(' ')} → ${loadAfter.map((x) => x.toFixed(1)).join(' ')}${span}`)
  if (bareDrift.length > 0) say(`bare proxy CPU µs/req at each round's start → end: ${bareDrift.map((d) => `${d.startUs.toFixed(0)} → ${d.endUs.toFixed(0)}`).join(', ')}`)
  say(`proxy on core ${PROXY_CORE}; wrk -t1 -c${CONNECTIONS} (max) and -c1, the fixed-rate and SSE clients and the mocks on core ${LOAD_CORE}; ${ROUNDS} rounds × ${DURATION} s; medians`)
  const file = resolve(opt.json ?? join(ROOT, 'var', 'bench', `gateway-${new Date().toISOString().replace(/[:.]/g, '-')}.json`))
  mkdirSync(resolve(file, '..'), { recursive: true })
  writeFileSync(file, JSON.stringify({
    date: new Date().toISOString(),
    machine,
    options: { ...opt, rounds: ROUNDS, duration: DURATION, connections: CONNECTIONS, streams: STREAMS, sseChunks: SSE_CHUNKS, sseItlMs: SSE_ITL, stallMs: STALL_MS, upstreamConnections: POOL },
    fixedRate: rate,
    bareDrift,
    rows: out,
    notes
  }, null, 2) + '\n')
  say(`JSON: ${file}`)
}

await main()
