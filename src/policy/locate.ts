import type { GeoLookup, GeoResult } from '../geo/types.js'
import { unknownGeo } from '../geo/types.js'
import type { ClientAddress } from '../net/forwarded.js'

/**
 * Where the caller is, for the policy. An address that cannot be located (broken forwarding chain, no socket
 * address) is an unknown location — never the location of the proxy in front of it — but the record still names
 * the database build that was in service.
 */
export function locate (geo: GeoLookup, client: ClientAddress): GeoResult {
  if (client.located) return geo.lookup(client.ip)
  const builds = geo.info().map((d) => d.buildEpoch).sort()
  return unknownGeo(builds[0] ?? null)
}
