/*
 * What a test needs from the machine (a tool on the PATH, files beside the clone). Outside CI a missing one is a
 * tap skip that says what was not checked and how to get it; under CI=true it is a failure (CI installs them all).
 */
import { spawnSync } from 'node:child_process'

/** Minimal view of tap's Test used here, so helpers need no tap types. */
export interface TapLike {
  fail (message: string): void
  /** tap: a skipped subtest (reported as `ok - message # SKIP`) */
  skip (message: string, extra: Record<string, never>, cb: () => void): unknown
}

export const underCi = (): boolean => process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'

/** Record that something needed is absent: a skip with the reason outside CI, a failure under CI. */
export function absent (t: TapLike, missing: string, notChecked: string): void {
  const msg = `${missing}: NOT checked: ${notChecked}`
  if (underCi()) t.fail(msg)
  else t.skip(msg, {}, () => {})
}

/** Is this command on the PATH (it runs with --version)? */
export function hasCommand (cmd: string): boolean {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' })
  return r.error === undefined
}

export const PROMTOOL_MISSING = 'promtool is not on the PATH (apt-get install prometheus; see README, Quick start)'
