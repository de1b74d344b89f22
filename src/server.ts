import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { loadConfig } from './config/load.js'
import { createLogger } from './logger.js'
import { createRuntime, closeRuntime, type Runtime } from './runtime.js'
import { buildApp } from './app.js'
import { buildAdmin, type AdminState } from './admin/index.js'
import { reloadConfig, type ReloadActor, type ReloadResult } from './policy/reload.js'

export interface RunningGateway {
  runtime: Runtime
  app: FastifyInstance
  admin: FastifyInstance
  /** data-plane and admin addresses, as http://host:port */
  url: string
  adminUrl: string
  /** stop accepting, let in-flight requests finish (up to server.shutdownGraceMs), flush audit, close */
  shutdown (): Promise<void>
  /** SIGHUP: re-read the configuration file; a broken one is refused (errors logged) and the old policy keeps serving */
  reload (actor?: ReloadActor): Promise<ReloadResult>
}

export interface StartOptions { configFile: string, logger?: Logger, env?: NodeJS.ProcessEnv }

export async function startGateway (opts: StartOptions): Promise<RunningGateway> {
  const loaded = await loadConfig(opts.configFile, opts.env)
  const log = opts.logger ?? createLogger(loaded.config.log.level)
  const runtime = await createRuntime(loaded.config, loaded.baseDir, log)
  const reload = async (actor?: ReloadActor): Promise<ReloadResult> => await reloadConfig(runtime, loaded.file, opts.env, actor)
  const state: AdminState = { ready: false, reload }
  const app = await buildApp(runtime)
  const admin = await buildAdmin(runtime, state)
  const s = loaded.config.server
  const url = await app.listen({ host: s.host, port: s.port })
  const adminUrl = await admin.listen({ host: s.adminHost, port: s.adminPort })
  state.ready = true
  log.info({ url, adminUrl }, 'geogate listening')
  let closing: Promise<void> | null = null
  const shutdown = async (): Promise<void> => {
    closing ??= (async () => {
      state.ready = false
      await app.close()
      await admin.close()
      await closeRuntime(runtime)
    })()
    return await closing
  }
  return { runtime, app, admin, url, adminUrl, shutdown, reload }
}
