import type { PolicySnapshot } from './snapshot.js'

/**
 * The one cross-border rule, used by the audit scope, the audit record and the metrics alike: the caller's
 * country differs from the serving region (a country, or an ISO 3166-2 code whose country part counts). An
 * unknown caller location, an anonymised caller (its country is where the exit node is, not the caller) and an
 * unknown serving region all count as crossing: what cannot be shown to stay inside is treated as leaving.
 */
export function isCrossBorder (country: string | null, anonymized: boolean, servingRegion: string | null): boolean {
  if (country === null || servingRegion === null || anonymized) return true
  return country !== servingRegion.split('-')[0]
}

/** Where a request is (or would be) served: the backend that took it, else the model's configured backend. */
export function servingRegionOf (policy: PolicySnapshot, backends: Readonly<Record<string, { region: string }>>, model: string | null, chosen: { region: string } | null): string | null {
  if (chosen !== null) return chosen.region
  const m = model === null ? undefined : policy.models.get(model)
  return m === undefined || !Object.hasOwn(backends, m.backend) ? null : backends[m.backend]?.region ?? null
}
