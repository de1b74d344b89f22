import { appendFile, readFile } from 'node:fs/promises'
import { readJsonLines } from './lines.js'
import { join } from 'node:path'
import { readRecords, type ReadOptions, type RecordFilter, type SegmentTally } from './read.js'
import { EXPORTED_MANIFEST, listDigests, DIGEST_DIR } from './segments.js'
import type { AuditRecord } from './types.js'

export type ExportFormat = 'jsonl' | 'csv'

export const CSV_COLUMNS = [
  'kind', 'ts', 'requestId', 'keyId', 'org', 'ip', 'country', 'subdivision', 'anonymizer', 'geodbBuild', 'model',
  'classification', 'servingRegion', 'endpoint', 'crossBorder', 'decision', 'rule', 'status', 'tokensIn', 'tokensOut',
  'latencyMs', 'locationTier', 'keyTier', 'degraded', 'shadow', 'outcome', 'upstreamStatus', 'stream',
  'policyVersion', 'capabilities', 'keyCountry', 'maxOutputTokens', 'n', 'choices',
  'actor', 'role', 'action', 'target', 'event', 'writer', 'seq', 'prev', 'hash'
] as const

/**
 * RFC 4180 quoting, plus the OWASP guard against formula injection: a text cell starting with = + - @ or a
 * control character is prefixed with an apostrophe, so a spreadsheet shows it rather than evaluating it.
 */
export function csvCell (v: unknown): string {
  if (v === null || v === undefined) return ''
  if (Array.isArray(v)) return csvCell(v.join('|'))
  if (typeof v === 'object') return csvCell(JSON.stringify(v))
  let s = String(v)
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = "'" + s
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s
}

export function csvRow (r: AuditRecord): string {
  const o = r as unknown as Record<string, unknown>
  return CSV_COLUMNS.map((c) => csvCell(o[c])).join(',') + '\r\n'
}

export interface ExportProgress { records: number, segments: number }

/**
 * The matching records as text chunks, in time order. JSONL lines are the segment lines byte for byte, so each
 * exported record can still be checked against its own hash.
 */
export async function * exportChunks (dir: string, filter: RecordFilter, format: ExportFormat, opts: ReadOptions & { onProgress?: (p: ExportProgress) => void } = {}): AsyncGenerator<string> {
  if (format === 'csv') yield CSV_COLUMNS.join(',') + '\r\n'
  let records = 0
  let segments = 0
  const onSegment = (t: SegmentTally): void => {
    segments++
    opts.onSegment?.(t)
    opts.onProgress?.({ records, segments })
  }
  let batch: string[] = []
  for await (const { record, line } of readRecords(dir, filter, { ...opts, onSegment })) {
    batch.push(format === 'csv' ? csvRow(record) : line + '\n')
    records++
    if (batch.length >= 512) {
      yield batch.join('')
      batch = []
      if (records % 50_000 === 0) opts.onProgress?.({ records, segments })
    }
  }
  if (batch.length > 0) yield batch.join('')
  opts.onProgress?.({ records, segments })
}

// ── export marker (retention) ───────────────────────────────────────────────────────────────────────────────

export interface ExportedEntry { segment: string, sha256: string, records: number, bytes: number, exportedAt: string }

/** Segments that have a final digest (closed: nothing more will be written to them), with that digest's hash. */
export async function finalSegments (dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const list of (await listDigests(dir)).values()) {
    for (const d of list) {
      const j = JSON.parse(await readFile(join(dir, DIGEST_DIR, d.file), 'utf8')) as { segment: string, final: boolean, sha256: string }
      if (j.final) out.set(j.segment, j.sha256)
    }
  }
  return out
}

/**
 * After a complete export, note the closed segments it carried in full in `exported.jsonl` (append-only, so it
 * works under `chattr +a` too). Retention deletes only segments listed here with the same SHA-256.
 */
export async function markExported (dir: string, tallies: SegmentTally[]): Promise<ExportedEntry[]> {
  const finals = await finalSegments(dir)
  const now = new Date().toISOString()
  const entries: ExportedEntry[] = []
  for (const t of tallies) {
    if (t.total !== t.matched || t.sha256 === null || finals.get(t.segment.file) !== t.sha256) continue
    entries.push({ segment: t.segment.file, sha256: t.sha256, records: t.total, bytes: t.bytes, exportedAt: now })
  }
  if (entries.length > 0) await appendFile(join(dir, EXPORTED_MANIFEST), entries.map((e) => JSON.stringify(e) + '\n').join(''), { flush: true })
  return entries
}

export async function readExported (dir: string): Promise<Map<string, ExportedEntry>> {
  const out = new Map<string, ExportedEntry>()
  for (const e of await readJsonLines<ExportedEntry>(join(dir, EXPORTED_MANIFEST))) out.set(e.segment, e)
  return out
}
