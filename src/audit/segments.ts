import { readdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'

/**
 * Files in an audit directory:
 *   <writer>_<YYYYMMDD>_<firstSeq, 12 digits>.jsonl   segments, one writer (replica) each, append-only
 *   digests/<writer>_<digestSeq, 12 digits>.json       signed digests, chained per writer
 *   digests/<keyId>.pem, digests/public-key.pem        the public keys digests are signed with
 *   <writer>.inflight.jsonl                            in-flight journal (interactions being forwarded)
 *   <writer>.lock                                      held by the live writer
 *   torn/                                              torn last lines moved aside on recovery
 *   exported.jsonl                                     export marker: segments exported in full (retention)
 * Writer ids are limited to [A-Za-z0-9.-] so `_` can separate the parts.
 */

export const DIGEST_DIR = 'digests'
export const TORN_DIR = 'torn'
export const EXPORTED_MANIFEST = 'exported.jsonl'
const SEGMENT = /^([A-Za-z0-9.-]+)_(\d{8})_(\d{12})\.jsonl$/
const DIGEST = /^([A-Za-z0-9.-]+)_(\d{12})\.json$/

export interface SegmentName { file: string, writer: string, day: string, firstSeq: number }
export interface DigestName { file: string, writer: string, digestSeq: number }

export function sanitizeWriterId (id: string): string {
  const s = id.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 100)
  return s.length > 0 ? s : 'writer'
}

export function defaultWriterId (): string {
  return sanitizeWriterId(hostname())
}

/** YYYYMMDD (UTC) of an ISO timestamp. */
export function dayOf (ts: string): string {
  return ts.slice(0, 4) + ts.slice(5, 7) + ts.slice(8, 10)
}

export function segmentFile (writer: string, day: string, firstSeq: number): string {
  return `${writer}_${day}_${String(firstSeq).padStart(12, '0')}.jsonl`
}

export function digestFile (writer: string, digestSeq: number): string {
  return `${writer}_${String(digestSeq).padStart(12, '0')}.json`
}

export function parseSegmentName (file: string): SegmentName | null {
  const m = SEGMENT.exec(file)
  if (m === null) return null
  return { file, writer: m[1] ?? '', day: m[2] ?? '', firstSeq: Number(m[3]) }
}

export function parseDigestName (file: string): DigestName | null {
  const m = DIGEST.exec(file)
  if (m === null) return null
  return { file, writer: m[1] ?? '', digestSeq: Number(m[2]) }
}

async function list (dir: string): Promise<string[]> {
  try { return await readdir(dir) } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

/** Segments grouped by writer, each group in chain order (by first seq). */
export async function listSegments (dir: string): Promise<Map<string, SegmentName[]>> {
  const byWriter = new Map<string, SegmentName[]>()
  for (const f of (await list(dir)).sort()) {
    const s = parseSegmentName(f)
    if (s === null) continue
    const group = byWriter.get(s.writer) ?? []
    group.push(s)
    byWriter.set(s.writer, group)
  }
  for (const g of byWriter.values()) g.sort((a, b) => a.firstSeq - b.firstSeq)
  return new Map([...byWriter.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
}

/** Digests grouped by writer, each group in digest order. */
export async function listDigests (dir: string): Promise<Map<string, DigestName[]>> {
  const byWriter = new Map<string, DigestName[]>()
  for (const f of await list(join(dir, DIGEST_DIR))) {
    const d = parseDigestName(f)
    if (d === null) continue
    const group = byWriter.get(d.writer) ?? []
    group.push(d)
    byWriter.set(d.writer, group)
  }
  for (const g of byWriter.values()) g.sort((a, b) => a.digestSeq - b.digestSeq)
  return byWriter
}

export async function listPublicKeyFiles (dir: string): Promise<string[]> {
  return (await list(join(dir, DIGEST_DIR))).filter((f) => f.endsWith('.pem')).map((f) => join(dir, DIGEST_DIR, f))
}
