import { policyHash } from './version.js'
import { compilePrecise, type PreciseRules } from './precise.js'
import type { Principal } from '../core/types.js'
import type { Config, KeyConfig, LocationsConfig, ModelConfig, QuotaConfig, TierConfig } from '../config/schema/index.js'

/**
 * The policy in force: the YAML seed, plus (with Redis) the live overrides made through the admin API.
 * Immutable; a change builds a new snapshot and swaps it, so a request sees one consistent policy.
 */
export interface PolicySnapshot {
  /** local counter: how many snapshots this process has built (not comparable across replicas) */
  readonly version: number
  /**
   * The effective policy's identity: a content hash of its canonical form (policy/version.ts), the same on every
   * replica that applies the same file and overrides, different as soon as anything that decides differs.
   */
  readonly hash: string
  readonly mode: 'enforce' | 'shadow'
  readonly blockedByUrl: string
  /** name -> tier; a Map, so a name from a request or an admin call never finds Object.prototype's members */
  readonly tiers: ReadonlyMap<string, Readonly<TierConfig>>
  readonly locations: Readonly<LocationsConfig>
  /** country or ISO 3166-2 subdivision -> tier, from locations.tiers (built once per snapshot, not per request) */
  readonly placeTiers: ReadonlyMap<string, string>
  /** region:, postal: and city: places of placeTiers, compiled (policy/precise.ts) */
  readonly precise: PreciseRules
  /** name -> model, likewise a Map (`"model": "toString"` is unknown, not a function) */
  readonly models: ReadonlyMap<string, Readonly<ModelConfig>>
  readonly quotas: readonly QuotaConfig[]
  /** sha256 hex of the raw key -> key */
  readonly keysByHash: ReadonlyMap<string, Readonly<KeyConfig>>
  readonly keysById: ReadonlyMap<string, Readonly<KeyConfig>>
}

export interface PolicySource {
  snapshot (): PolicySnapshot
}

export function snapshotFromConfig (c: Readonly<Config>, version = 1, keys: readonly KeyConfig[] = c.keys): PolicySnapshot {
  const placeTiers = new Map(Object.entries(c.locations.tiers).flatMap(([tier, places]) => places.map((p): [string, string] => [p, tier])))
  return Object.freeze({
    version,
    hash: policyHash(c, keys),
    mode: c.policy.mode,
    blockedByUrl: c.policy.blockedByUrl,
    tiers: new Map(Object.entries(c.tiers)),
    locations: c.locations,
    placeTiers,
    precise: compilePrecise(placeTiers),
    models: new Map(Object.entries(c.models)),
    quotas: c.quotas,
    keysByHash: new Map(keys.map((k) => [k.sha256, k])),
    keysById: new Map(keys.map((k) => [k.id, k]))
  })
}

/** The caller behind a key, as every decision sees it (never the key's hash). */
export function principalOf (key: Readonly<KeyConfig>): Principal {
  return { keyId: key.id, org: key.org, tier: key.tier, country: key.country, verifiedEntity: key.verifiedEntity, status: key.status }
}
