import * as crypto from 'node:crypto'

type OneShot = (algorithm: string, data: string | Buffer, outputEncoding: 'hex') => string
/**
 * crypto.hash (Node 20.12+) hashes in one call without building a Hash object: 0.25 µs against 0.6 µs for a short
 * key, 1.1 against 1.5 µs for a 1.5 KB audit record, on this project's development machine. Older Node 20s fall back.
 */
const oneShot = (crypto as unknown as { hash?: OneShot }).hash

/** SHA-256 hex of a string or bytes. */
export const sha256 = oneShot !== undefined
  ? (data: string | Buffer): string => oneShot('sha256', data, 'hex')
  : (data: string | Buffer): string => crypto.createHash('sha256').update(data).digest('hex')

/** SHA-256 of a string, hex: how API keys and admin tokens are held (never the raw secret). */
export function sha256hex (s: string): string {
  return sha256(s)
}

/**
 * The credential of an `Authorization: Bearer …` header, or null. The scheme is case-insensitive
 * (RFC 9110 §11.1); an empty credential is no credential.
 */
export function bearerToken (auth: string | undefined): string | null {
  if (typeof auth !== 'string' || auth.slice(0, 7).toLowerCase() !== 'bearer ') return null
  const k = auth.slice(7).trim()
  return k === '' ? null : k
}
