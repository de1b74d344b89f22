import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { loadConfig, ConfigError } from './config/load.js'
import type { Config } from './config/schema/index.js'
import { createLogger } from './infra/logger.js'
import { createRuntime, closeRuntime, type Runtime } from './runtime.js'
import { buildApp } from './http/app.js'
import { buildAdmin, type AdminState } from './admin/index.js'
import { reloadConfig, type ReloadActor, type ReloadResult } from './reload.js'
import type { MockBackend } from './mock/server.js'
import { defaultWriterId } from './audit/segments.js'

export interface RunningGateway {
  runtime: Runtime
  app: FastifyInstance
  admin: FastifyInstance
  /** data-plane and admin addresses, as http://host:port */
  url: string
  adminUrl: string
  /** mock accelerators started beside the gateway (--with-mock-backend): backend name → URL */
  mocks: Record<string, string>
  /** stop accepting, let in-flight requests finish (up to server.shutdownGraceMs), cancel the rest, flush audit, close */
  shutdown (): Promise<void>
  /** SIGHUP: re-read the configuration file; a broken one is refused (errors logged) and the old policy keeps serving */
  reload (actor?: ReloadActor): Promise<ReloadResult>
}

export interface StartOptions {
  configFile: string
  logger?: Logger
  env?: NodeJS.ProcessEnv
  /** serve every loopback backend of the config with the bundled mock accelerator (what `npm start` does) */
  withMockBackend?: boolean
  mockTtftMs?: number
  mockItlMs?: number
  /** running as one worker of `serve --workers N` (cli/workers.ts); absent: the only process */
  worker?: WorkerRole
}

/** What a worker process is told by the primary of `serve --workers N`. */
export interface WorkerRole {
  /** 1…N, stable across restarts: the audit chain is `<writer id>-w<id>`, so a restarted worker recovers its journal */
  id: number
  /** the one worker that serves the admin plane */
  admin: boolean
  /** /metrics on the admin plane: every worker's registry, aggregated (gathered by the primary) */
  metrics: () => Promise<string>
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]'])
/** After cancelling, how long responses get to end before their connections are cut. */
const CANCEL_GRACE_MS = 5_000

export async function startMocks (config: Readonly<Config>, opts: StartOptions, log: Logger): Promise<Array<{ name: string, mock: MockBackend }>> {
  // Loaded only when asked for: a production gateway never loads the demo backend.
  const { startMockBackend } = await import('./mock/server.js')
  const out: Array<{ name: string, mock: MockBackend }> = []
  const byAddress = new Map<string, MockBackend>()
  try {
    for (const [name, b] of Object.entries(config.backends)) {
      const u = new URL(b.url)
      if (!LOOPBACK.has(u.hostname)) continue
      const address = `${u.hostname}:${u.port}`
      let mock = byAddress.get(address)
      if (mock === undefined) {
        mock = await startMockBackend({
          host: u.hostname === '[::1]' ? '::1' : u.hostname,
          port: u.port === '' ? 80 : Number(u.port),
          ttftMs: opts.mockTtftMs,
          itlMs: opts.mockItlMs,
          apiKey: b.apiKey,
          models: Object.keys(config.models),
          log: log.child({ component: 'mock-backend', backend: name })
        })
        byAddress.set(address, mock)
      }
      out.push({ name, mock })
    }
  } catch (err) {
    await Promise.all([...byAddress.values()].map(async (m) => { await m.close() }))
    throw err
  }
  if (out.length === 0) throw new ConfigError('--with-mock-backend', [{ path: '/backends', message: 'no backend on a loopback address (127.0.0.1, localhost, [::1]) to serve with the mock' }])
  return out
}

function delay (ms: number): { promise: Promise<void>, cancel: () => void } {
  let timer: NodeJS.Timeout | undefined
  const promise = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })
  return { promise, cancel: () => { clearTimeout(timer) } }
}

export async function startGateway (opts: StartOptions): Promise<RunningGateway> {
  const loaded = await loadConfig(opts.configFile, opts.env)
  const worker = opts.worker
  const baseLog = opts.logger ?? createLogger(loaded.config.log.level)
  const log = worker === undefined ? baseLog : baseLog.child({ worker: worker.id })
  // With workers, the primary runs the mocks (once, for all of them).
  const mocks = opts.withMockBackend === true && worker === undefined ? await startMocks(loaded.config, opts, log) : []
  const writerId = worker === undefined ? undefined : `${loaded.config.audit.writerId ?? defaultWriterId()}-w${worker.id}`
  const runtime = await createRuntime(loaded.config, loaded.baseDir, log, writerId === undefined ? {} : { auditWriterId: writerId })
  // POST /admin/reload on this process reaches the other workers (each a replica of its own: workers need Redis)
  // the way it reaches other pods, through the shared store, so nothing is relayed through the primary.
  const reloadHere = async (actor?: ReloadActor): Promise<ReloadResult> => await reloadConfig(runtime, loaded.file, opts.env, actor)
  const reload = reloadHere
  // Another replica's POST /admin/reload reaches this process (each worker on its own) through the shared store:
  // re-read this file here, and answer.
  runtime.live.onReloadRequest(`${runtime.audit.writer}/${process.pid}`, async (actor) => {
    const r = await reloadHere(actor)
    const policy = runtime.live.snapshot().hash
    return r.ok
      ? { ok: true, policy, changed: r.changed, restartNeeded: r.restartNeeded }
      : { ok: false, policy, issues: r.issues.map((i) => ({ path: i.path, message: i.message })) }
  })
  const state: AdminState = { ready: false, reload, ...(worker === undefined ? {} : { metrics: worker.metrics }) }
  const app = await buildApp(runtime)
  const admin = await buildAdmin(runtime, state)
  const s = loaded.config.server
  const url = await app.listen({ host: s.host, port: s.port })
  const adminUrl = worker === undefined || worker.admin ? await admin.listen({ host: s.adminHost, port: s.adminPort }) : ''
  state.ready = true
  const mockUrls = Object.fromEntries(mocks.map((m) => [m.name, m.mock.url]))
  if (worker === undefined) log.info({ url, adminUrl, mockBackends: mockUrls }, 'geogate listening')
  else log.info({ url, adminUrl, writer: writerId }, 'worker listening')

  let closing: Promise<void> | null = null
  const shutdown = async (): Promise<void> => {
    closing ??= (async () => {
      // /readyz answers 503 from now on; Fastify answers 503 to requests arriving on kept-alive connections.
      state.ready = false
      const closed = app.close()
      const grace = delay(s.shutdownGraceMs)
      const drained = await Promise.race([runtime.backends.drained().then(() => true), grace.promise.then(() => false)])
      grace.cancel()
      if (!drained) {
        log.warn({ inFlight: runtime.backends.inFlight, graceMs: s.shutdownGraceMs }, 'grace period over: cancelling in-flight requests')
        runtime.backends.abortAll('shutdown')
        const cut = delay(CANCEL_GRACE_MS)
        await Promise.race([runtime.backends.drained(), cut.promise])
        cut.cancel()
      }
      // Connections kept alive by finished requests would hold close() until their keep-alive timeout.
      app.server.closeIdleConnections()
      const last = delay(CANCEL_GRACE_MS)
      await Promise.race([closed, last.promise.then(() => { app.server.closeAllConnections() })])
      await closed
      last.cancel()
      await admin.close()
      await Promise.all([...new Set(mocks.map((m) => m.mock))].map(async (m) => { await m.close() }))
      await closeRuntime(runtime)
      log.info('geogate stopped')
    })()
    return await closing
  }
  // SIGHUP reaches every worker from the primary: a signal-driven reload stays in this process.
  return { runtime, app, admin, url, adminUrl, mocks: mockUrls, shutdown, reload: reloadHere }
}
