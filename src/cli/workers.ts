/*
 * `geogate serve --workers N`: one primary, N worker processes (node:cluster) sharing the data-plane socket.
 *
 *   primary ── fork ──► worker 1 … N   each a whole gateway (startGateway) with its own audit chain <id>-w<i>;
 *      │                               worker 1 also serves the admin plane
 *      ├─ SIGTERM / SIGINT ──► every worker drains (server.shutdownGraceMs) and exits; then the primary exits
 *      ├─ SIGHUP, POST /admin/reload ──► every worker re-reads the file (live changes travel through Redis)
 *      ├─ /metrics on worker 1 ──► the primary gathers every worker's registry, worker 1 aggregates
 *      └─ a worker that dies is forked again with the same id: its chain's recovery at start turns what it had
 *         in flight into `outcome: unknown` records
 *
 * The primary holds no runtime (no Redis, no audit log): it only forks, relays and watches.
 */
import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import type { LoadedConfig } from '../config/load.js'
import type { Config } from '../config/schema/index.js'
import { createLogger } from '../infra/logger.js'
import { startGateway, startMocks, type RunningGateway, type StartOptions } from '../server.js'

type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>

/** Messages between the primary and its workers (process.send). */
type Message =
  | { gg: 'listening', id: number, url: string, adminUrl: string }
  /** admin worker → primary: gather every worker's metrics */
  | { gg: 'metrics?', req: number }
  /** primary → each worker, and its answer */
  | { gg: 'collect', req: number }
  | { gg: 'collected', req: number, data: MetricsJson }
  /** primary → admin worker: everyone's metrics */
  | { gg: 'metrics', req: number, data: MetricsJson[] }

function isMessage (m: unknown): m is Message {
  return m !== null && typeof m === 'object' && typeof (m as { gg?: unknown }).gg === 'string'
}

/** How long the primary waits for workers' metrics (a worker busy for longer is left out of that scrape). */
const COLLECT_MS = 2_000
/**
 * A worker that dies is forked again after RESTART_DELAY_MS, doubled (up to RESTART_MAX_MS) each time it dies
 * again within STABLE_MS of its start, so a crash loop does not spin; one that dies before it ever listened stops
 * the gateway (a bad file, a port in use: starting it again would fail the same way).
 */
const RESTART_DELAY_MS = 250
const RESTART_MAX_MS = 10_000
const STABLE_MS = 10_000

export function redisConfigured (c: Readonly<Config>): boolean {
  return c.redis.url !== undefined || (c.redis.nodes !== undefined && c.redis.nodes.length > 0)
}

/**
 * The number of workers: `--workers` (N or auto), else server.workers. `auto` is the cores this process may use when
 * Redis is configured, else 1. More than one without Redis is refused: each worker would keep its own limits (the real
 * limit would be the limit × N) and its own admin changes.
 */
export function workerCount (flag: string | undefined, config: Readonly<Config>): number {
  const raw = flag ?? config.server.workers
  let n: number
  if (raw === 'auto') n = redisConfigured(config) ? availableParallelism() : 1
  else {
    n = Number(raw)
    if (!Number.isInteger(n) || n < 1) throw new Error(`--workers must be a positive integer or auto, got "${String(raw)}"`)
  }
  if (n > 1 && !redisConfigured(config)) {
    throw new Error(`${n} workers need redis (redis.url or redis.nodes): limits and live policy changes are shared through it; without Redis run --workers 1`)
  }
  return n
}

/** The primary: fork, relay, restart, drain. Resolves with the exit code once every worker is gone after a signal. */
export async function runPrimary (n: number, loaded: LoadedConfig, opts: StartOptions): Promise<number> {
  const log = createLogger(loaded.config.log.level).child({ role: 'primary' })
  const mocks = opts.withMockBackend === true ? await startMocks(loaded.config, opts, log) : []
  const slots = new Map<number, Worker>()
  const everListened = new Set<number>()
  let stopping = false
  let firstReport = true
  let nextReq = 0
  let exitCode = 0
  let allExited: () => void = () => {}
  const exited = new Promise<void>((resolve) => { allExited = resolve })
  const pending = new Map<number, { data: MetricsJson[], waiting: number, done: () => void }>()
  let adminUrl = ''
  let url = ''

  const stopAll = (signal: NodeJS.Signals, code: number): void => {
    if (code !== 0) exitCode = code
    if (stopping) return
    stopping = true
    log.info({ signal, workers: slots.size }, 'shutting down every worker')
    for (const w of slots.values()) w.process.kill('SIGTERM')
    if (slots.size === 0) allExited()
  }

  const collect = (asker: Worker, req: number): void => {
    const id = nextReq++
    const entry = { data: [] as MetricsJson[], waiting: 0, done: () => {} }
    const timer = setTimeout(() => { entry.done() }, COLLECT_MS)
    entry.done = () => {
      clearTimeout(timer)
      pending.delete(id)
      if (asker.isConnected()) asker.send({ gg: 'metrics', req, data: entry.data } satisfies Message)
    }
    pending.set(id, entry)
    for (const w of slots.values()) {
      if (!w.isConnected()) continue
      entry.waiting++
      w.send({ gg: 'collect', req: id } satisfies Message)
    }
    if (entry.waiting === 0) entry.done()
  }

  const restarts = new Map<number, { startedAt: number, delayMs: number }>()
  const fork = (id: number): void => {
    const w = cluster.fork({ GEOGATE_WORKER_ID: String(id), GEOGATE_WORKER_ADMIN: id === 1 ? '1' : '0' })
    slots.set(id, w)
    restarts.set(id, { startedAt: Date.now(), delayMs: restarts.get(id)?.delayMs ?? RESTART_DELAY_MS })
    w.on('message', (m: unknown) => {
      if (!isMessage(m)) return
      if (m.gg === 'listening') {
        everListened.add(id)
        url = m.url
        if (m.adminUrl !== '') adminUrl = m.adminUrl
        if (firstReport && everListened.size === n) {
          firstReport = false
          const mockBackends = Object.fromEntries(mocks.map((x) => [x.name, x.mock.url]))
          log.info({ url, adminUrl, workers: n, mockBackends }, 'geogate listening')
          const list = Object.entries(mockBackends).map(([name, u]) => ` · mock backend ${name} ${u}`).join('')
          process.stderr.write(`geogate: data plane ${url} · admin ${adminUrl} · ${n} workers${list}\n`)
        } else if (!firstReport) {
          log.info({ worker: id, adminUrl: m.adminUrl }, 'worker back')
        }
      } else if (m.gg === 'metrics?') {
        collect(w, m.req)
      } else if (m.gg === 'collected') {
        const entry = pending.get(m.req)
        if (entry === undefined) return
        entry.data.push(m.data)
        if (--entry.waiting === 0) entry.done()
      }
    })
    w.on('exit', (code, signal) => {
      if (slots.get(id) === w) slots.delete(id)
      if (stopping) {
        if (code !== 0) exitCode = 1
        log.info({ worker: id, code, signal }, 'worker stopped')
        if (slots.size === 0) allExited()
        return
      }
      if (!everListened.has(id)) {
        log.error({ worker: id, code, signal }, 'worker exited before it listened; stopping the gateway')
        stopAll('SIGTERM', 1)
        return
      }
      const r = restarts.get(id) ?? { startedAt: 0, delayMs: RESTART_DELAY_MS }
      const delayMs = Date.now() - r.startedAt < STABLE_MS ? r.delayMs : RESTART_DELAY_MS
      restarts.set(id, { startedAt: r.startedAt, delayMs: Math.min(RESTART_MAX_MS, delayMs * 2) })
      log.error({ worker: id, code, signal, restartInMs: delayMs }, 'worker died; starting it again (its audit chain recovers what it had in flight)')
      setTimeout(() => { if (!stopping) fork(id) }, delayMs)
    })
  }

  for (let id = 1; id <= n; id++) fork(id)
  process.once('SIGTERM', () => { stopAll('SIGTERM', 0) })
  process.once('SIGINT', () => { stopAll('SIGINT', 0) })
  process.on('SIGHUP', () => {
    log.info({ workers: slots.size }, 'SIGHUP: every worker re-reads the configuration')
    for (const w of slots.values()) w.process.kill('SIGHUP')
  })
  await exited
  await Promise.all([...new Set(mocks.map((m) => m.mock))].map(async (m) => { await m.close() }))
  log.info({ code: exitCode }, 'geogate stopped')
  return exitCode
}

/** A worker: a whole gateway, told its id by the primary, answering its relays. */
export async function runWorker (opts: StartOptions): Promise<RunningGateway> {
  const id = Number(process.env.GEOGATE_WORKER_ID)
  if (!Number.isInteger(id) || id < 1) throw new Error('GEOGATE_WORKER_ID is not set: a worker is started by serve --workers')
  const send = (m: Message): void => { if (process.connected) process.send?.(m) }
  const waiting = new Map<number, (data: MetricsJson[]) => void>()
  let nextReq = 0
  let gw: RunningGateway | null = null
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return
    if (m.gg === 'collect') {
      const registry = gw?.runtime.metrics.registry
      if (registry === undefined) { send({ gg: 'collected', req: m.req, data: [] }); return }
      registry.getMetricsAsJSON().then(
        (data) => { send({ gg: 'collected', req: m.req, data: data as MetricsJson }) },
        () => { send({ gg: 'collected', req: m.req, data: [] }) })
    } else if (m.gg === 'metrics') {
      waiting.get(m.req)?.(m.data)
      waiting.delete(m.req)
    }
  })
  const metrics = async (): Promise<string> => {
    const req = nextReq++
    const data = await new Promise<MetricsJson[]>((resolve) => {
      waiting.set(req, resolve)
      send({ gg: 'metrics?', req })
    })
    return await AggregatorRegistry.aggregate(data).metrics()
  }
  gw = await startGateway({ ...opts, worker: { id, admin: process.env.GEOGATE_WORKER_ADMIN === '1', metrics } })
  send({ gg: 'listening', id, url: gw.url, adminUrl: gw.adminUrl })
  return gw
}

export function isWorker (): boolean { return cluster.isWorker }
