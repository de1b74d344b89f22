/*
 * Location rules below the subdivision, as places in locations.tiers:
 *   region:<name>          a GeoJSON region of geo.regions (the point, or its accuracy circle, per the tier's accuracyRadius)
 *   postal:<CC>:<code>     a postal code of a country (MaxMind `postal.code`); `*` and `?` match a range: postal:UA:83*
 *   city:<geonameId>       a city by its GeoNames id (MaxMind City `city.geoname_id`)
 * Checked before subdivisions and countries, in that order (region, postal code, city): the first listed one decides.
 */
import type { GeoResult } from '../geo/types.js'
import type { TierConfig } from '../config/schema/index.js'

export interface PostalRule { country: string, pattern: string, tier: string, place: string }

export interface PreciseRules {
  /** postal rules with wildcards (exact ones are plain placeTiers lookups) */
  readonly postalGlobs: readonly PostalRule[]
  /** any region:, postal: or city: place at all (else the checks are skipped) */
  readonly any: boolean
}

export function compilePrecise (placeTiers: ReadonlyMap<string, string>): PreciseRules {
  const postalGlobs: PostalRule[] = []
  let any = false
  for (const [place, tier] of placeTiers) {
    if (place.startsWith('region:') || place.startsWith('city:')) any = true
    if (!place.startsWith('postal:')) continue
    any = true
    const [, country, pattern] = place.split(':')
    if (country !== undefined && pattern !== undefined && /[*?]/.test(pattern)) postalGlobs.push({ country, pattern, tier, place })
  }
  return { postalGlobs, any }
}

/** `*` any run, `?` one character. */
function glob (pattern: string, s: string): boolean {
  let p = 0; let i = 0; let star = -1; let mark = 0
  while (i < s.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === s[i])) { p++; i++ } else if (p < pattern.length && pattern[p] === '*') { star = p++; mark = i } else if (star !== -1) { p = star + 1; i = ++mark } else return false
  }
  while (p < pattern.length && pattern[p] === '*') p++
  return p === pattern.length
}

/** The precise place that gives the tier, if one is listed: `region:dnr`, `region:dnr~12.5km`, `postal:UA:83001`, `city:709717`. */
export function precisePlace (geo: GeoResult, placeTiers: ReadonlyMap<string, string>, rules: PreciseRules,
  tiers: ReadonlyMap<string, Readonly<TierConfig>>): { tier: string, source: string } | null {
  if (!rules.any) return null
  for (const hit of geo.regions ?? []) {
    const tier = placeTiers.get(`region:${hit.name}`)
    if (tier === undefined) continue
    // inside (the default): an accuracy circle that reaches into the region counts as in it
    if (hit.inside) return { tier, source: `region:${hit.name}` }
    if ((tiers.get(tier)?.accuracyRadius ?? 'inside') === 'inside') return { tier, source: `region:${hit.name}~${hit.distanceKm}km` }
  }
  if (geo.postalCode !== undefined && geo.country !== null) {
    const exact = `postal:${geo.country}:${geo.postalCode}`
    const tier = placeTiers.get(exact)
    if (tier !== undefined) return { tier, source: exact }
    for (const r of rules.postalGlobs) {
      if (r.country === geo.country && glob(r.pattern, geo.postalCode)) return { tier: r.tier, source: `postal:${geo.country}:${geo.postalCode}` }
    }
  }
  if (geo.city !== undefined) {
    const place = `city:${geo.city.geonameId}`
    const tier = placeTiers.get(place)
    if (tier !== undefined) return { tier, source: place }
  }
  return null
}
