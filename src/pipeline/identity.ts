import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { PolicySnapshot } from '../policy/state.js'
import type { Principal } from './context.js'
import { UnauthorizedError } from '../errors.js'

export function sha256hex (s: string): string {
  return createHash('sha256').update(s).digest('hex')
}

/** The API key from `Authorization: Bearer …` or `x-api-key`. */
export function extractKey (headers: IncomingHttpHeaders): string | null {
  const auth = headers.authorization
  if (typeof auth === 'string' && auth.slice(0, 7).toLowerCase() === 'bearer ') return auth.slice(7).trim() || null
  const x = headers['x-api-key']
  if (typeof x === 'string' && x.length > 0) return x
  return null
}

/** Resolve the caller; 401 when the key is missing or unknown. Keys are held only as SHA-256 hashes. */
export function authenticate (headers: IncomingHttpHeaders, policy: PolicySnapshot): Principal {
  const raw = extractKey(headers)
  if (raw === null) throw new UnauthorizedError('Missing API key: send Authorization: Bearer <key> or x-api-key')
  const key = policy.keysByHash.get(sha256hex(raw))
  if (key === undefined) throw new UnauthorizedError('Incorrect API key provided')
  return { keyId: key.id, org: key.org, tier: key.tier, country: key.country, verifiedEntity: key.verifiedEntity }
}
