import { loadConfig, ConfigError, type ConfigIssue } from './config/load.js'
import type { Runtime } from './runtime.js'
import { PolicyRejected } from './policy/live.js'

export type ReloadResult =
  | { ok: true, changed: string[], restartNeeded: string[] }
  | { ok: false, issues: ConfigIssue[] }

/** Who asked: the signal, or an admin token (name and role) through POST /admin/reload. */
export interface ReloadActor { name: string, role: string }

/**
 * SIGHUP (or POST /admin/reload): re-read the configuration file and swap what can be swapped live. A file that
 * does not parse or validate — alone or under the live overrides — is refused with every error logged, and the
 * running policy keeps serving.
 */
export async function reloadConfig (rt: Runtime, file: string, env: NodeJS.ProcessEnv = process.env, actor: ReloadActor = { name: 'SIGHUP', role: 'signal' }): Promise<ReloadResult> {
  const log = rt.log.child({ stage: 'reload' })
  const before = rt.live.snapshot().version
  let result: ReloadResult
  try {
    const loaded = await loadConfig(file, env)
    const outcome = await rt.live.reload(loaded.config)
    result = { ok: true, ...outcome }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PolicyRejected) {
      result = { ok: false, issues: err.issues }
    } else {
      result = { ok: false, issues: [{ path: file, message: err instanceof Error ? err.message : String(err) }] }
    }
  }
  // The GeoIP files are re-checked too (swapped when changed), whatever the configuration file says.
  try {
    await rt.geo.checkForChanges()
  } catch (err) {
    log.warn({ err }, 'GeoIP database re-check failed; the databases in service stay')
  }
  rt.metrics.policyReloads.inc({ result: result.ok ? 'applied' : 'refused' })
  if (!result.ok) {
    const list = result.issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; ')
    log.error({ file, issues: result.issues }, `configuration reload refused (${result.issues.length} error(s): ${list}); the running policy is kept`)
    return result
  }
  if (rt.config.log.level !== rt.log.level) rt.log.level = rt.config.log.level
  if (result.restartNeeded.length > 0) log.warn({ sections: result.restartNeeded }, 'these sections changed in the file but need a restart; their running values are kept')
  log.info({ file, changed: result.changed, policyVersion: rt.live.snapshot().version }, 'configuration reloaded')
  rt.audit.appendAdminChange({
    ts: new Date().toISOString(),
    actor: actor.name,
    role: actor.role,
    action: 'config.reload',
    target: file,
    before: { policyVersion: before },
    after: { policyVersion: rt.live.snapshot().version, changed: result.changed, restartNeeded: result.restartNeeded }
  })
  return result
}
