import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
import { listSegments, type SegmentName } from './segments.js'
import type { AuditRecord } from './types.js'

/** Filters shared by `geogate audit export`, `GET /admin/audit` and the report. Absent: no restriction. */
export interface RecordFilter {
  /** inclusive, ISO 8601 (a date alone means its midnight UTC) */
  from?: string | undefined
  /** exclusive */
  to?: string | undefined
  country?: string | undefined
  subdivision?: string | undefined
  model?: string | undefined
  keyId?: string | undefined
  org?: string | undefined
  decision?: 'allow' | 'deny' | undefined
  kind?: AuditRecord['kind'] | undefined
}

export interface ReadRecord { record: AuditRecord, line: string, segment: SegmentName }

export interface SegmentTally { segment: SegmentName, total: number, matched: number, sha256: string | null, bytes: number }

export interface ReadOptions {
  /** called when a segment has been read to its end */
  onSegment?: (t: SegmentTally) => void
  /** compute each segment's SHA-256 while reading it (export marker) */
  hashSegments?: boolean
}

/** Normalise a user-given time bound to a comparable ISO string; throws on garbage. */
export function isoBound (v: string | undefined, name: string): string | undefined {
  if (v === undefined || v === '') return undefined
  const d = new Date(/^\d{4}-\d{2}$/.test(v) ? v + '-01' : v)
  if (Number.isNaN(d.getTime())) throw new Error(`${name}: not a date or time: ${v}`)
  return d.toISOString()
}

/** What a caller asks to filter by, as text (query string, command line), before it is checked. */
export interface FilterInput {
  from?: string | undefined, to?: string | undefined, country?: string | undefined, subdivision?: string | undefined
  model?: string | undefined, keyId?: string | undefined, org?: string | undefined, decision?: string | undefined
}

/**
 * The one reading of a record filter for the CLI and the admin API: bounds become ISO instants, countries and
 * subdivisions upper case, and a bad value throws an Error naming the field (as the caller spells it).
 */
export function parseFilter (q: FilterInput, name: (field: string) => string = (f) => f): RecordFilter {
  if (q.decision !== undefined && q.decision !== 'allow' && q.decision !== 'deny') throw new Error(`${name('decision')}: allow or deny`)
  return {
    from: isoBound(q.from, name('from')),
    to: isoBound(q.to, name('to')),
    country: q.country?.toUpperCase(),
    subdivision: q.subdivision?.toUpperCase(),
    model: q.model,
    keyId: q.keyId,
    org: q.org,
    decision: q.decision
  }
}

export function matches (r: AuditRecord, f: RecordFilter): boolean {
  if (f.kind !== undefined && r.kind !== f.kind) return false
  if (f.from !== undefined && r.ts < f.from) return false
  if (f.to !== undefined && r.ts >= f.to) return false
  const needsInteraction = f.country ?? f.subdivision ?? f.model ?? f.keyId ?? f.org ?? f.decision
  if (needsInteraction === undefined) return true
  if (r.kind !== 'interaction') return false
  if (f.country !== undefined && r.country !== f.country) return false
  if (f.subdivision !== undefined && r.subdivision !== f.subdivision) return false
  if (f.model !== undefined && r.model !== f.model) return false
  if (f.keyId !== undefined && r.keyId !== f.keyId) return false
  if (f.org !== undefined && r.org !== f.org) return false
  if (f.decision !== undefined && r.decision !== f.decision) return false
  return true
}

/** Whole UTC days a segment can hold records of (segments rotate daily): skip those outside the range unread. */
export function segmentInRange (s: SegmentName, f: RecordFilter): boolean {
  const day = `${s.day.slice(0, 4)}-${s.day.slice(4, 6)}-${s.day.slice(6, 8)}`
  if (f.from !== undefined && day < f.from.slice(0, 10)) return false
  if (f.to !== undefined && day > f.to.slice(0, 10)) return false
  return true
}

async function * segmentRecords (dir: string, seg: SegmentName, f: RecordFilter, opts: ReadOptions): AsyncGenerator<ReadRecord> {
  const hasher = opts.hashSegments === true ? createHash('sha256') : null
  let carry: Buffer | null = null
  let total = 0
  let matched = 0
  let bytes = 0
  for await (const chunk of createReadStream(join(dir, seg.file), { highWaterMark: 1 << 20 })) {
    let buf = chunk as Buffer
    hasher?.update(buf)
    bytes += buf.length
    if (carry !== null) { buf = Buffer.concat([carry, buf]); carry = null }
    let start = 0
    for (;;) {
      const nl = buf.indexOf(0x0a, start)
      if (nl === -1) break
      const line = buf.toString('utf8', start, nl)
      start = nl + 1
      let record: AuditRecord
      try { record = JSON.parse(line) as AuditRecord } catch { continue } // damaged lines are verify's business
      total++
      if (!matches(record, f)) continue
      matched++
      yield { record, line, segment: seg }
    }
    if (start < buf.length) carry = buf.subarray(start)
  }
  opts.onSegment?.({ segment: seg, total, matched, sha256: hasher === null ? null : hasher.digest('hex'), bytes })
}

async function * writerRecords (dir: string, segs: SegmentName[], f: RecordFilter, opts: ReadOptions): AsyncGenerator<ReadRecord> {
  for (const s of segs) {
    if (!segmentInRange(s, f)) continue
    yield * segmentRecords(dir, s, f, opts)
  }
}

/**
 * Matching records of every writer in the directory, merged into time order (each writer's chain is already in
 * order; this is a k-way merge on `ts`, so memory stays one record per writer).
 */
export async function * readRecords (dir: string, f: RecordFilter = {}, opts: ReadOptions = {}): AsyncGenerator<ReadRecord> {
  const writers = [...(await listSegments(dir)).values()]
  const its = writers.map((segs) => writerRecords(dir, segs, f, opts))
  const heads: Array<ReadRecord | null> = []
  for (const it of its) {
    const n = await it.next()
    heads.push(n.done === true ? null : n.value)
  }
  for (;;) {
    let best = -1
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i]
      if (h === null || h === undefined) continue
      const b = best === -1 ? null : heads[best]
      if (b === null || b === undefined || h.record.ts < b.record.ts) best = i
    }
    if (best === -1) return
    const out = heads[best] as ReadRecord
    const n = await (its[best] as AsyncGenerator<ReadRecord>).next()
    heads[best] = n.done === true ? null : n.value
    yield out
  }
}

/** How many segments a read would touch (for progress). */
export async function segmentCount (dir: string, f: RecordFilter = {}): Promise<number> {
  let n = 0
  for (const segs of (await listSegments(dir)).values()) for (const s of segs) if (segmentInRange(s, f)) n++
  return n
}
