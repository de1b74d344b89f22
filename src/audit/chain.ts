import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { sha256 as sha256Of } from '../core/hash.js'
import type { AnyEntry, ChainFields } from './types.js'

/**
 * The hash chain and the signed digests.
 *
 * A record's canonical text is its JSON line without the `hash` field (compact JSON.stringify, fields in the order
 * written, `hash` always last). `hash = SHA-256(canonical text)`; since `prev` and `seq` are inside the hashed
 * text, any edited, deleted, inserted or reordered line breaks the chain. Hashing the exact bytes (rather than a
 * re-serialisation) means even an edit that parses to the same value is caught.
 */

export const GENESIS = '0'.repeat(64)
const HASH_SUFFIX_LEN = ',"hash":"'.length + 64 + '"}'.length

export function sha256 (data: string | Buffer): string {
  return sha256Of(data)
}

/** The line (with trailing newline) for an entry at this place in the chain. */
export function sealRecord (entry: AnyEntry, writer: string, seq: number, prev: string): { line: string, hash: string } {
  return sealJson(JSON.stringify(entry), writer, seq, prev)
}

/**
 * Same, from the entry's JSON text (an object with none of the chain fields). The chain fields are appended as
 * text — the result is exactly JSON.stringify({ ...entry, writer, seq, prev }) — which saves copying the entry
 * on the request path. Writer ids are [A-Za-z0-9.-] and prev is hex, so neither needs escaping.
 */
export function sealJson (json: string, writer: string, seq: number, prev: string): { line: string, hash: string } {
  const canonical = (json === '{}' ? '{' : json.slice(0, -1) + ',') + '"writer":"' + writer + '","seq":' + String(seq) + ',"prev":"' + prev + '"}'
  const hash = sha256(canonical)
  return { line: canonical.slice(0, -1) + ',"hash":"' + hash + '"}\n', hash }
}

/**
 * Same as sealJson, from the record's JSON as bytes (an object with none of the chain fields): the hash of the
 * canonical text, and the line's tail. The line is `json` without its closing brace, then `tail` — the bytes
 * sealJson's line would be (test/audit/seal-bytes.test.ts holds them equal). The writer keeps queued records as
 * bytes, outside the JS heap, while they wait for their group commit.
 */
export function sealBytes (json: Buffer, writer: string, seq: number, prev: string): { tail: string, hash: string } {
  const empty = json.length === 2 // '{}'
  const fields = (empty ? '' : ',') + '"writer":"' + writer + '","seq":' + String(seq) + ',"prev":"' + prev + '"'
  const hash = createHash('sha256').update(json.subarray(0, json.length - 1)).update(fields + '}').digest('hex')
  return { tail: fields + ',"hash":"' + hash + '"}\n', hash }
}

export type LineCheck =
  | { ok: true, record: AnyEntry & ChainFields }
  | { ok: false, reason: string, record?: Partial<ChainFields> }

/** Parse one line (without its newline) and check its own hash. Chain continuity is the caller's job. */
export function checkLine (line: string): LineCheck {
  let parsed: unknown
  try { parsed = JSON.parse(line) } catch { return { ok: false, reason: 'not valid JSON' } }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: false, reason: 'not a JSON object' }
  const rec = parsed as Record<string, unknown>
  const partial: Partial<ChainFields> = {}
  if (typeof rec.seq === 'number') partial.seq = rec.seq
  if (typeof rec.writer === 'string') partial.writer = rec.writer
  if (typeof rec.hash !== 'string' || typeof rec.prev !== 'string' || typeof rec.seq !== 'number' || typeof rec.writer !== 'string') {
    return { ok: false, reason: 'missing chain fields (writer, seq, prev, hash)', record: partial }
  }
  const tail = ',"hash":"' + rec.hash + '"}'
  if (rec.hash.length !== 64 || !line.endsWith(tail)) return { ok: false, reason: 'hash field is not last or malformed', record: partial }
  const canonical = line.slice(0, line.length - HASH_SUFFIX_LEN) + '}'
  if (sha256(canonical) !== rec.hash) return { ok: false, reason: 'hash does not match the record (edited)', record: partial }
  return { ok: true, record: rec as unknown as AnyEntry & ChainFields }
}

/** A CloudTrail-style digest: covers a prefix (or, when final, the whole) of one segment and chains the previous digest. */
export interface Digest {
  kind: 'digest'
  version: 1
  writer: string
  digestSeq: number
  ts: string
  segment: string
  /** bytes of the segment covered (the whole file when final) */
  bytes: number
  /** SHA-256 of those bytes */
  sha256: string
  firstSeq: number
  lastSeq: number
  lastHash: string
  records: number
  /** no more records will be written to the segment */
  final: boolean
  /** SHA-256 of the previous digest file of this writer, GENESIS for the first */
  prevDigest: string
  /** SHA-256 of the signing public key (DER SPKI), or null when digests are unsigned */
  keyId: string | null
  /** base64 Ed25519 signature over the digest's text without this field; null when unsigned */
  signature: string | null
}

export interface Signer { key: KeyObject, publicKeyPem: string, keyId: string }

export function loadSigner (pem: string): Signer {
  const key = createPrivateKey(pem)
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`audit signing key must be Ed25519, got ${key.asymmetricKeyType ?? 'unknown'}`)
  const pub = createPublicKey(key)
  return { key, publicKeyPem: pub.export({ type: 'spki', format: 'pem' }).toString(), keyId: publicKeyId(pub) }
}

export function publicKeyId (pub: KeyObject): string {
  return sha256(pub.export({ type: 'spki', format: 'der' }))
}

/** The digest file's text (one line + newline); the signature is last and covers everything before it. */
export function sealDigest (d: Omit<Digest, 'signature' | 'keyId'>, signer: Signer | null): string {
  const body = JSON.stringify({ ...d, keyId: signer === null ? null : signer.keyId })
  const signature = signer === null ? null : sign(null, Buffer.from(body), signer.key).toString('base64')
  return body.slice(0, -1) + ',"signature":' + JSON.stringify(signature) + '}\n'
}

export type DigestCheck = { ok: true, digest: Digest } | { ok: false, reason: string }

/** Parse a digest file and check its signature with the matching public key (by keyId). */
export function checkDigest (text: string, keys: ReadonlyMap<string, KeyObject>, requireSigned: boolean): DigestCheck {
  const line = text.endsWith('\n') ? text.slice(0, -1) : text
  let d: Digest
  try { d = JSON.parse(line) as Digest } catch { return { ok: false, reason: 'digest is not valid JSON' } }
  if (d.kind !== 'digest' || typeof d.segment !== 'string' || typeof d.sha256 !== 'string') return { ok: false, reason: 'not a digest' }
  const tail = ',"signature":' + JSON.stringify(d.signature) + '}'
  if (!line.endsWith(tail)) return { ok: false, reason: 'digest signature field is not last' }
  const body = line.slice(0, line.length - tail.length) + '}'
  if (d.signature === null) {
    if (requireSigned) return { ok: false, reason: 'digest is not signed' }
    return { ok: true, digest: d }
  }
  const key = d.keyId === null ? undefined : keys.get(d.keyId)
  if (key === undefined) return { ok: false, reason: `no public key ${d.keyId ?? 'null'} to check the signature with` }
  if (!verify(null, Buffer.from(body), key, Buffer.from(d.signature, 'base64'))) return { ok: false, reason: 'digest signature is invalid' }
  return { ok: true, digest: d }
}
