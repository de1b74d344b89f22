/*
 * Step 2: who is calling. API keys arrive as `Authorization: Bearer …` (what OpenAI SDKs send) or `x-api-key`;
 * the gateway holds only their SHA-256, so a leaked configuration or Redis dump does not leak a key.
 */
import { timingSafeEqual } from 'node:crypto'
import { bearerToken, sha256hex } from '../core/hash.js'
import type { IncomingHttpHeaders } from 'node:http'
import { principalOf, type PolicySnapshot } from '../policy/snapshot.js'
import type { Principal } from '../core/types.js'
import { UnauthorizedError } from '../core/errors.js'


/**
 * The API key from `Authorization: Bearer …` or `x-api-key`. Both present and different is refused: the gateway
 * and the backend (or a log reader) must never disagree about who called.
 */
export function extractKey (headers: IncomingHttpHeaders): string | null {
  const b = bearerToken(headers.authorization)
  const rawX = headers['x-api-key']
  const x = typeof rawX === 'string' && rawX.trim() !== '' ? rawX.trim() : null
  if (b !== null && x !== null && b !== x) throw new UnauthorizedError('Send one API key: Authorization and x-api-key differ')
  return b ?? x
}

/** Resolve the caller; 401 when the key is missing or unknown. */
export function authenticate (headers: IncomingHttpHeaders, policy: PolicySnapshot): Principal {
  const raw = extractKey(headers)
  if (raw === null) throw new UnauthorizedError('Missing API key: send Authorization: Bearer <key> or x-api-key')
  const digest = sha256hex(raw)
  // The map finds the candidate by the digest (hashing first means lookup timing says nothing about the key);
  // the comparison that admits the caller is constant-time.
  const key = policy.keysByHash.get(digest)
  if (key === undefined || !timingSafeEqual(Buffer.from(digest, 'hex'), Buffer.from(key.sha256, 'hex'))) {
    throw new UnauthorizedError('Incorrect API key provided')
  }
  return principalOf(key)
}
