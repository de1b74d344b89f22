/**
 * One database record → the part of a GeoResult it knows. Handles the GeoIP2/GeoLite2 schema (Country, City,
 * Enterprise, Anonymous-IP; anonymizer flags at the top level or under `traits`) and the flat `country_code`
 * schema of open databases. Anything else in a record is ignored.
 */
import type { AnonymizerFlags, GeoPoint } from './types.js'
import { ANONYMIZER_TRAITS, noAnonymizer } from '../core/anonymizers.js'

export interface LayerAnswer {
  country: string | null
  subdivisions: string[]
  registeredCountry: string | null
  representedCountry: string | null
  /** null when the record says nothing about anonymizers */
  anonymizer: AnonymizerFlags | null
  /** City databases: GeoNames id, postal code, coordinates (null when the record has none) */
  city?: { geonameId: number, name: string | null } | null
  postalCode?: string | null
  location?: GeoPoint | null
}

type Rec = Record<string, unknown>

function isRec (v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Not places: the unknown/user-assigned codes some open databases emit, and the legacy regional codes
 * (EU, AP) registries use for blocks with no country. Treated as unknown location.
 */
const NOT_A_COUNTRY = new Set(['ZZ', 'XX', 'EU', 'AP', 'A1', 'A2', 'O1', '--'])

export function countryCode (v: unknown): string | null {
  if (typeof v !== 'string' || !/^[A-Za-z]{2}$/.test(v)) return null
  const cc = v.toUpperCase()
  return NOT_A_COUNTRY.has(cc) ? null : cc
}

function isoOf (v: unknown): string | null {
  return isRec(v) ? countryCode(v.iso_code) : null
}

/** ISO 3166-2 subdivision codes are 1–3 alphanumerics after the country (UA-43, GB-ENG, FR-75C). */
const SUBDIVISION = /^[A-Z0-9]{1,3}$/

function flagsFrom (r: Rec): AnonymizerFlags | null {
  let said = false
  const f = noAnonymizer()
  for (const t of ANONYMIZER_TRAITS) {
    const v = r[t.mmdb]
    if (typeof v === 'boolean') {
      said = true
      f[t.flag] = v
      if (v) f.any = true
    }
  }
  const anonymous = r.is_anonymous
  if (typeof anonymous === 'boolean') said = true
  if (anonymous === true) f.any = true
  return said ? f : null
}

/** `databaseType` tells an Anonymous-IP database, whose records say "not anonymous" by being empty maps. */
export function normaliseRecord (rec: unknown, databaseType: string): LayerAnswer {
  const out: LayerAnswer = { country: null, subdivisions: [], registeredCountry: null, representedCountry: null, anonymizer: null }
  if (!isRec(rec)) return out
  out.country = isoOf(rec.country) ?? countryCode(rec.country_code)
  out.registeredCountry = isoOf(rec.registered_country)
  out.representedCountry = isoOf(rec.represented_country)
  if (out.country !== null && Array.isArray(rec.subdivisions)) {
    for (const s of rec.subdivisions) {
      const code = isRec(s) && typeof s.iso_code === 'string' ? s.iso_code.toUpperCase() : null
      if (code !== null && SUBDIVISION.test(code)) out.subdivisions.push(`${out.country}-${code}`)
    }
  }
  if (isRec(rec.city) && typeof rec.city.geoname_id === 'number') {
    const names = rec.city.names
    out.city = { geonameId: rec.city.geoname_id, name: isRec(names) && typeof names.en === 'string' ? names.en : null }
  }
  if (isRec(rec.postal) && typeof rec.postal.code === 'string' && rec.postal.code.trim() !== '') out.postalCode = rec.postal.code.trim().toUpperCase()
  const loc = rec.location
  if (isRec(loc) && typeof loc.latitude === 'number' && typeof loc.longitude === 'number' &&
      Math.abs(loc.latitude) <= 90 && Math.abs(loc.longitude) <= 180) {
    out.location = { latitude: loc.latitude, longitude: loc.longitude, accuracyRadiusKm: typeof loc.accuracy_radius === 'number' && loc.accuracy_radius >= 0 ? loc.accuracy_radius : null }
  }
  out.anonymizer = flagsFrom(rec) ?? (isRec(rec.traits) ? flagsFrom(rec.traits) : null)
  if (out.anonymizer === null && /anonymous-ip/i.test(databaseType)) {
    out.anonymizer = noAnonymizer()
  }
  return out
}
