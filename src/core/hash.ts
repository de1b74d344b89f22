import { createHash } from 'node:crypto'

/** SHA-256 of a string, hex: how API keys and admin tokens are held (never the raw secret). */
export function sha256hex (s: string): string {
  return createHash('sha256').update(s).digest('hex')
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
