/**
 * MaxMind's official test databases (MIT) live outside the repository: $GEOGATE_GEODB_FIXTURES, else
 * ../shared/geodb-fixtures beside the repository (one level further up from a worktree). They are never copied in.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

function candidates (): string[] {
  const env = process.env.GEOGATE_GEODB_FIXTURES
  // when set, the variable alone decides (so a run can be pointed elsewhere, or at nothing)
  return env !== undefined && env !== ''
    ? [env]
    : [join(repoRoot, '..', 'shared', 'geodb-fixtures'), join(repoRoot, '..', '..', 'shared', 'geodb-fixtures')]
}

export function officialFixturesDir (): string | null {
  return candidates().find((c) => existsSync(join(c, 'GeoIP2-City-Test.mmdb'))) ?? null
}

/** Minimal view of tap's Test used here, so helpers need no tap types. */
interface TapLike {
  fail (message: string): void
  pass (message: string): void
  comment (message: string): void
}

/**
 * The fixtures directory, or null after saying plainly what was not checked. Under CI their absence is a failure:
 * CI always has shared/ beside the clone.
 */
export function requireOfficialFixtures (t: TapLike, whatIsNotChecked: string): string | null {
  const dir = officialFixturesDir()
  if (dir !== null) return dir
  const msg = `MaxMind test databases absent (looked in ${candidates().join(', ')}; set GEOGATE_GEODB_FIXTURES): NOT checked: ${whatIsNotChecked}`
  if (process.env.CI !== undefined && process.env.CI !== '') t.fail(msg)
  else {
    t.comment(msg)
    t.pass(msg)
  }
  return null
}

export type SourceEntry = Record<string, Record<string, unknown>>

/** A `*.source.json` file: an array of { network: record }. */
export function readSource (dir: string, name: string): Array<[string, Record<string, unknown>]> {
  const raw = JSON.parse(readFileSync(join(dir, name), 'utf8')) as SourceEntry[]
  const out: Array<[string, Record<string, unknown>]> = []
  for (const e of raw) for (const [net, rec] of Object.entries(e)) out.push([net, rec])
  return out
}
