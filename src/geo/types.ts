import { noAnonymizer, type AnonymizerFlags } from '../core/anonymizers.js'

/** What the geo stage knows about a caller's address (flags: core/anonymizers.ts). Unknown is a value, not an error. */
export type { AnonymizerFlags }

/** Why a lookup resolved no country: no layer knows the address, the databases are stale and fail closed, or no IP. */
export type UnknownReason = 'not_found' | 'stale' | 'invalid_ip'

export interface GeoResult {
  /** ISO 3166-1 alpha-2 of where the address is, or null when no database knows it */
  country: string | null
  /** ISO 3166-2 codes composed from country + subdivision iso_code, largest first (e.g. ['UA-43']) */
  subdivisions: string[]
  registeredCountry: string | null
  representedCountry: string | null
  anonymizer: AnonymizerFlags
  /** Build date (ISO 8601) of the oldest database layer consulted; recorded with every decision */
  build: string | null
  /** set when country is null */
  unknownReason?: UnknownReason
  // ── below the subdivision: set only when a City-type database knows them ──
  /** GeoNames id (MaxMind City `city.geoname_id`) and English name */
  city?: { geonameId: number, name: string | null }
  /** MaxMind `postal.code`, as published (e.g. `83001`) */
  postalCode?: string
  /** MaxMind `location`: the point and the radius (km) around it the address is within, when given */
  location?: GeoPoint
  /** configured regions (geo.regions, GeoJSON) the point is in, or whose edge is within its accuracy radius */
  regions?: RegionHit[]
}

export interface GeoPoint { latitude: number, longitude: number, accuracyRadiusKm: number | null }

export interface RegionHit {
  name: string
  /** the point itself is inside the region */
  inside: boolean
  /** from the point to the region's edge (0 when inside) */
  distanceKm: number
}

export interface GeoDatabaseInfo {
  path: string
  databaseType: string
  buildEpoch: string
  ageDays: number
  /** older than geo.maxAgeDays */
  stale: boolean
  ipVersion: number
  nodeCount: number
  /** when this file was put in service (start or last hot swap) */
  loadedAt: string
}

/** A hot-swappable view over the layered databases. */
export interface GeoLookup {
  lookup (ip: string): GeoResult
  info (): GeoDatabaseInfo[]
  /** true when the oldest layer is older than geo.maxAgeDays */
  stale (): boolean
  /** Re-check every file now (SIGHUP; watches and a slow poll do it otherwise); resolves when checked */
  checkForChanges (): Promise<void>
  close (): Promise<void>
}

export const NO_ANONYMIZER: Readonly<AnonymizerFlags> = Object.freeze(noAnonymizer())

export function unknownGeo (build: string | null): GeoResult {
  return { country: null, subdivisions: [], registeredCountry: null, representedCountry: null, anonymizer: { ...NO_ANONYMIZER }, build }
}
