import type { GeoResult } from '../geo/types.js'
import type { PolicySnapshot } from '../policy/state.js'
import type { Decision, Principal, RequestShape } from './context.js'

/**
 * Decide whether this caller may do this from this place. A request passes only if the location's tier
 * AND the key's tier both allow it. TODO(issue 3): the full policy.
 */
export function decide (shape: RequestShape, geo: GeoResult, principal: Principal, policy: PolicySnapshot): Decision {
  const locationTier = geo.country === null ? policy.locations.unknown : policy.locations.default
  return { allow: true, rule: 'allow', status: 200, message: 'ok', locationTier, keyTier: principal.tier, shadow: false }
}
