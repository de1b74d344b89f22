/**
 * GeoIP test databases generated at run time: the places MaxMind's official test databases lack (embargoed
 * countries, the subdivisions policy cares about, anonymizers), in GeoIP2-City, GeoIP2-Anonymous-IP and the flat
 * `country_code` shapes. Addresses are documentation ranges (RFC 5737, RFC 3849), so no real network is implied.
 *
 *   const dbs = await writeTestGeoDbs(dir)
 *   config.geo = { databases: [dbs.city, dbs.anonymousIp] }
 *   dbs.known.find((k) => k.label === 'crimea')  // { ip: '192.0.2.81', country: 'UA', subdivisions: ['UA-43'], … }
 */
import { join } from 'node:path'
import { typed, writeMmdb, type MmdbEntry, type MmdbMap } from './mmdb-writer.js'

export interface AnonymousTraits {
  vpn?: boolean
  tor?: boolean
  hosting?: boolean
  publicProxy?: boolean
  residentialProxy?: boolean
}

export interface PlaceSpec {
  country: string
  /** subdivision iso_codes without the country prefix, largest first ('43' for UA-43) */
  subdivisions?: string[]
  registeredCountry?: string
  representedCountry?: string
}

export interface KnownAddress {
  label: string
  ip: string
  /** what GeoLookup should answer (build excluded) with the City + Anonymous-IP layers */
  country: string | null
  subdivisions: string[]
  registeredCountry: string | null
  representedCountry: string | null
  anonymizer: Required<AnonymousTraits>
}

export interface TestGeoDbs {
  /** GeoIP2-City shaped */
  city: string
  /** GeoIP2-Country shaped (no subdivisions) */
  country: string
  /** GeoIP2-Anonymous-IP shaped */
  anonymousIp: string
  /** flat { country_code } records, as open databases publish */
  flat: string
  buildEpoch: Date
  known: KnownAddress[]
}

interface Row { label: string, network: string, ip: string, place: PlaceSpec | null, anon?: AnonymousTraits }

const NAMES: Record<string, string> = {
  US: 'United States', CU: 'Cuba', IR: 'Iran', KP: 'North Korea', SY: 'Syria', UA: 'Ukraine', DE: 'Germany',
  GB: 'United Kingdom', FR: 'France', NL: 'Netherlands', SE: 'Sweden', JP: 'Japan'
}

/** The table every generated database is built from; `known` is derived from it. */
export const TEST_ROWS: readonly Row[] = [
  { label: 'us-california', network: '192.0.2.0/28', ip: '192.0.2.1', place: { country: 'US', subdivisions: ['CA'] } },
  { label: 'cuba', network: '192.0.2.16/28', ip: '192.0.2.17', place: { country: 'CU' } },
  { label: 'iran', network: '192.0.2.32/28', ip: '192.0.2.33', place: { country: 'IR' } },
  { label: 'north-korea', network: '192.0.2.48/28', ip: '192.0.2.49', place: { country: 'KP' } },
  { label: 'syria', network: '192.0.2.64/28', ip: '192.0.2.65', place: { country: 'SY' } },
  { label: 'crimea', network: '192.0.2.80/28', ip: '192.0.2.81', place: { country: 'UA', subdivisions: ['43'] } },
  { label: 'donetsk', network: '192.0.2.96/28', ip: '192.0.2.97', place: { country: 'UA', subdivisions: ['14'] } },
  { label: 'luhansk', network: '192.0.2.112/28', ip: '192.0.2.113', place: { country: 'UA', subdivisions: ['09'] } },
  { label: 'kyiv', network: '192.0.2.128/28', ip: '192.0.2.129', place: { country: 'UA', subdivisions: ['30'] } },
  { label: 'germany-us-registered', network: '192.0.2.144/28', ip: '192.0.2.145', place: { country: 'DE', registeredCountry: 'US' } },
  { label: 'gb-us-military', network: '192.0.2.160/28', ip: '192.0.2.161', place: { country: 'GB', subdivisions: ['ENG'], representedCountry: 'US' } },
  { label: 'france', network: '192.0.2.176/28', ip: '192.0.2.177', place: { country: 'FR', subdivisions: ['IDF', '75'] } },
  { label: 'vpn-netherlands', network: '198.51.100.0/28', ip: '198.51.100.1', place: { country: 'NL' }, anon: { vpn: true } },
  { label: 'tor-germany', network: '198.51.100.16/28', ip: '198.51.100.17', place: { country: 'DE' }, anon: { tor: true } },
  { label: 'hosting-us', network: '198.51.100.32/28', ip: '198.51.100.33', place: { country: 'US' }, anon: { hosting: true } },
  { label: 'public-proxy-sweden', network: '198.51.100.48/28', ip: '198.51.100.49', place: { country: 'SE' }, anon: { publicProxy: true } },
  { label: 'residential-proxy-japan', network: '198.51.100.64/28', ip: '198.51.100.65', place: { country: 'JP' }, anon: { residentialProxy: true } },
  { label: 'vpn-unknown-place', network: '198.51.100.80/28', ip: '198.51.100.81', place: null, anon: { vpn: true } },
  { label: 'unknown-v4', network: '203.0.113.0/24', ip: '203.0.113.7', place: null },
  { label: 'v6-us-california', network: '2001:db8:1::/48', ip: '2001:db8:1::1', place: { country: 'US', subdivisions: ['CA'] } },
  { label: 'v6-crimea', network: '2001:db8:43::/48', ip: '2001:db8:43::5', place: { country: 'UA', subdivisions: ['43'] } },
  { label: 'v6-iran', network: '2001:db8:98::/48', ip: '2001:db8:98::1', place: { country: 'IR' } },
  { label: 'v6-tor-germany', network: '2001:db8:7::/48', ip: '2001:db8:7::9', place: { country: 'DE' }, anon: { tor: true, vpn: true } },
  { label: 'unknown-v6', network: '2001:db8:ffff::/48', ip: '2001:db8:ffff::1', place: null }
]

function names (s: string): MmdbMap {
  return { en: s }
}

function countryObj (iso: string, extra: MmdbMap = {}): MmdbMap {
  return { geoname_id: 1000 + iso.charCodeAt(0) * 26 + iso.charCodeAt(1), iso_code: iso, names: names(NAMES[iso] ?? iso), ...extra }
}

/** A GeoIP2-City (or Country, without subdivisions/city/location) record. */
export function geoip2Record (p: PlaceSpec, opts: { city?: boolean } = {}): MmdbMap {
  const city = opts.city ?? true
  const rec: MmdbMap = {
    continent: { code: p.country === 'US' ? 'NA' : (['JP', 'KP', 'IR', 'SY'].includes(p.country) ? 'AS' : 'EU'), geoname_id: 6255148, names: names('Continent') },
    country: countryObj(p.country),
    registered_country: countryObj(p.registeredCountry ?? p.country)
  }
  if (p.representedCountry !== undefined) rec.represented_country = countryObj(p.representedCountry, { type: 'military' })
  if (city) {
    rec.location = { accuracy_radius: typed('uint16', 100), latitude: typed('double', 48.5), longitude: typed('double', -12.25), time_zone: 'Etc/UTC' }
    if (p.subdivisions !== undefined && p.subdivisions.length > 0) {
      rec.subdivisions = p.subdivisions.map((s, i) => ({ geoname_id: 700000 + i, iso_code: s, names: names(`${p.country}-${s}`) }))
      rec.city = { geoname_id: 800000, names: names('Test City') }
    }
  }
  return rec
}

/** A GeoIP2-Anonymous-IP record: only the flags that are true are present, as MaxMind writes them. */
export function anonymousIpRecord (a: AnonymousTraits): MmdbMap {
  const rec: MmdbMap = {}
  if (a.vpn === true || a.tor === true || a.publicProxy === true || a.residentialProxy === true || a.hosting === true) rec.is_anonymous = true
  if (a.vpn === true) rec.is_anonymous_vpn = true
  if (a.hosting === true) rec.is_hosting_provider = true
  if (a.publicProxy === true) rec.is_public_proxy = true
  if (a.residentialProxy === true) rec.is_residential_proxy = true
  if (a.tor === true) rec.is_tor_exit_node = true
  return rec
}

export function flatRecord (countryCode: string): MmdbMap {
  return { country_code: countryCode }
}

function expected (r: Row): KnownAddress {
  const a = r.anon ?? {}
  return {
    label: r.label,
    ip: r.ip,
    country: r.place?.country ?? null,
    subdivisions: (r.place?.subdivisions ?? []).map((s) => `${r.place?.country ?? ''}-${s}`),
    registeredCountry: r.place === null ? null : (r.place.registeredCountry ?? r.place.country),
    representedCountry: r.place?.representedCountry ?? null,
    anonymizer: { vpn: a.vpn ?? false, tor: a.tor ?? false, hosting: a.hosting ?? false, publicProxy: a.publicProxy ?? false, residentialProxy: a.residentialProxy ?? false }
  }
}

export const DEFAULT_TEST_BUILD = new Date('2026-11-01T00:00:00Z')

/** Write City, Country, Anonymous-IP and flat databases into `dir`; returns their paths and the known-address table. */
export async function writeTestGeoDbs (dir: string, opts: { buildEpoch?: Date } = {}): Promise<TestGeoDbs> {
  // MMDB stores build_epoch in whole seconds
  const buildEpoch = new Date(Math.floor((opts.buildEpoch ?? DEFAULT_TEST_BUILD).getTime() / 1000) * 1000)
  const placed = TEST_ROWS.filter((r): r is Row & { place: PlaceSpec } => r.place !== null)
  const cityEntries: MmdbEntry[] = placed.map((r) => ({ network: r.network, data: geoip2Record(r.place) }))
  const countryEntries: MmdbEntry[] = placed.map((r) => ({ network: r.network, data: geoip2Record(r.place, { city: false }) }))
  const anonEntries: MmdbEntry[] = TEST_ROWS.filter((r) => r.anon !== undefined).map((r) => ({ network: r.network, data: anonymousIpRecord(r.anon ?? {}) }))
  const flatEntries: MmdbEntry[] = placed.map((r) => ({ network: r.network, data: flatRecord(r.place.country) }))
  const out: TestGeoDbs = {
    city: await writeMmdb(join(dir, 'Test-GeoIP2-City.mmdb'), cityEntries, { databaseType: 'GeoIP2-City', buildEpoch }),
    country: await writeMmdb(join(dir, 'Test-GeoIP2-Country.mmdb'), countryEntries, { databaseType: 'GeoIP2-Country', buildEpoch }),
    anonymousIp: await writeMmdb(join(dir, 'Test-GeoIP2-Anonymous-IP.mmdb'), anonEntries, { databaseType: 'GeoIP2-Anonymous-IP', buildEpoch }),
    flat: await writeMmdb(join(dir, 'Test-country-code.mmdb'), flatEntries, { databaseType: 'test-country-code', buildEpoch }),
    buildEpoch,
    known: TEST_ROWS.map(expected)
  }
  return out
}
