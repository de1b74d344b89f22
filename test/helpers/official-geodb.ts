/**
 * MaxMind's official test databases (MIT) live outside the repository: $GEOGATE_GEODB_FIXTURES, else
 * ../shared/geodb-fixtures beside the repository (one level further up from a worktree). They are never copied in.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { absent, type TapLike } from './needs.js'

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

/**
 * The fixtures directory, or null after saying plainly what was not checked: a tap skip with the reason outside CI,
 * a failure under CI (CI always has shared/ beside the clone).
 */
export function requireOfficialFixtures (t: TapLike, whatIsNotChecked: string): string | null {
  const dir = officialFixturesDir()
  if (dir !== null) return dir
  absent(t, `MaxMind test databases absent (looked in ${candidates().join(', ')}; set GEOGATE_GEODB_FIXTURES)`, whatIsNotChecked)
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
