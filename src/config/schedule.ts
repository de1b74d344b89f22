/*
 * Scheduled policy changes: `schedule: [{ effectiveFrom, locations?, tiers?, models? }]`, each a partial policy laid
 * over the one before it from its instant on. The policy in force at time T is the file with every entry whose
 * effectiveFrom ≤ T applied in order. Live overrides (admin API) are laid over that, as over the file.
 */
import type { Config, ScheduleEntry } from './schema/index.js'

/** An entry's instant in epoch ms (NaN when it does not parse: the loader reports that). */
export function effectiveAt (e: Pick<ScheduleEntry, 'effectiveFrom'>): number {
  return Date.parse(e.effectiveFrom)
}

function applyEntry (c: Config, e: ScheduleEntry): Config {
  let locations = c.locations
  if (e.locations !== undefined) {
    const { tiers: moved, ...rest } = e.locations
    let tiers = locations.tiers
    if (moved !== undefined) {
      // A place named in the entry leaves whatever tier it was in: moving a country is one line.
      const named = new Set(Object.values(moved).flat())
      tiers = {}
      for (const [t, places] of Object.entries(locations.tiers)) {
        if (Object.hasOwn(moved, t)) continue
        tiers[t] = places.filter((p) => !named.has(p))
      }
      for (const [t, places] of Object.entries(moved)) tiers[t] = places
    }
    locations = { ...locations, ...rest, tiers }
  }
  return {
    ...c,
    locations,
    tiers: e.tiers === undefined ? c.tiers : { ...c.tiers, ...e.tiers },
    models: e.models === undefined ? c.models : { ...c.models, ...e.models }
  }
}

/** The configuration as of `atMs`: every entry in force by then applied, in order (the schedule itself is kept). */
export function applySchedule (c: Readonly<Config>, atMs: number): Config {
  let out = c as Config
  for (const e of c.schedule) {
    if (effectiveAt(e) <= atMs) out = applyEntry(out, e)
  }
  return out
}

/** The configuration once every entry up to and including the i-th applies (for validating each stage). */
export function scheduleStage (c: Readonly<Config>, i: number): Config {
  let out = c as Config
  for (const e of c.schedule.slice(0, i + 1)) out = applyEntry(out, e)
  return out
}

/** Instants (epoch ms) after `nowMs` at which the policy changes, ascending. */
export function upcomingSwitches (c: Readonly<Config>, nowMs: number): number[] {
  return [...new Set(c.schedule.map(effectiveAt).filter((t) => t > nowMs))].sort((a, b) => a - b)
}

/** Order and date problems the schema cannot express (each stage's content is validated by the loader). */
export function scheduleOrderIssues (c: Readonly<Config>): Array<{ path: string, message: string }> {
  const issues: Array<{ path: string, message: string }> = []
  let last = -Infinity
  c.schedule.forEach((e, i) => {
    const t = effectiveAt(e)
    if (Number.isNaN(t)) {
      issues.push({ path: `/schedule/${i}/effectiveFrom`, message: `"${e.effectiveFrom}" is not a date and time` })
      return
    }
    if (t <= last) issues.push({ path: `/schedule/${i}/effectiveFrom`, message: 'entries must be in ascending order of effectiveFrom, each at a distinct instant' })
    last = Math.max(last, t)
    if (e.locations === undefined && e.tiers === undefined && e.models === undefined) {
      issues.push({ path: `/schedule/${i}`, message: 'changes nothing: give locations, tiers or models' })
    }
  })
  return issues
}
