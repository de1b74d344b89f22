/*
 * The US Consolidated Screening List (International Trade Administration, trade.gov): the export-screening lists
 * of Commerce, State and Treasury (Entity List, SDN, Military End User, Unverified, Denied Persons, …) in one
 * file, published as `consolidated.csv` and `consolidated.json`. In the CSV, multi-valued cells are
 * `;`-separated and an address is `address, city, state, postal_code, country`.
 */
import { parseCsv, CsvSyntaxError } from './csv.js'
import { ScreeningImportError, type ImportIssue, type ScreeningAddress, type ScreeningEntry, type ScreeningSource } from './types.js'

/** The published columns, in the published order (`_id` may precede them). */
export const CSL_COLUMNS = [
  'source', 'entity_number', 'type', 'programs', 'name', 'title', 'addresses', 'federal_register_notice', 'start_date',
  'end_date', 'standard_order', 'license_requirement', 'license_policy', 'call_sign', 'vessel_type', 'gross_tonnage',
  'gross_registered_tonnage', 'vessel_flag', 'vessel_owner', 'remarks', 'source_list_url', 'alt_names', 'citizenships',
  'dates_of_birth', 'nationalities', 'places_of_birth', 'source_information_url', 'ids'
] as const
type Column = typeof CSL_COLUMNS[number]

const MAX_ISSUES = 50
const DATE = /^\d{4}-\d{2}-\d{2}/
const ISO2 = /^[A-Za-z]{2}$/

function text (v: string | null | undefined): string | null {
  if (v === null || v === undefined) return null
  const t = v.trim()
  return t === '' ? null : t
}

function list (cell: string | null | undefined): string[] {
  if (cell === null || cell === undefined) return []
  return cell.split(';').map((s) => s.trim()).filter((s) => s !== '')
}

/** "Entity List (EL) - Bureau of Industry and Security" → "EL"; a source without an abbreviation is kept whole. */
function sourceTag (source: string): string {
  const m = /\(([A-Za-z0-9-]{1,12})\)/.exec(source)
  return m?.[1] ?? source
}

/** `www.Example.com/path` → `example.com` */
export function websiteHost (v: string): string | null {
  const t = v.trim().toLowerCase().replace(/^[a-z]+:\/\//, '').replace(/^www\./, '').split(/[/?#\s]/)[0] ?? ''
  return /^[a-z0-9.-]+\.[a-z]{2,}$/.test(t) ? t : null
}

interface Builder {
  issues: ImportIssue[]
  ids: Set<string>
}

function addIssue (b: Builder, line: number, field: string, message: string): void {
  if (b.issues.length < MAX_ISSUES) b.issues.push({ line, field, message })
}

function checkAddress (b: Builder, line: number, a: ScreeningAddress): ScreeningAddress {
  if (a.country !== null) {
    if (!ISO2.test(a.country)) addIssue(b, line, 'addresses', `country "${a.country}" is not an ISO 3166-1 alpha-2 code`)
    else a.country = a.country.toUpperCase()
  }
  return a
}

function build (b: Builder, line: number, f: {
  rowId: string | null, source: string | null, entityNumber: string | null, type: string | null, name: string | null,
  altNames: string[], programs: string[], addresses: ScreeningAddress[], frn: string | null, start: string | null,
  end: string | null, listUrl: string | null, websites: string[]
}): ScreeningEntry | null {
  const before = b.issues.length
  if (f.source === null) addIssue(b, line, 'source', 'empty: every entry names the list it is on')
  if (f.name === null) addIssue(b, line, 'name', 'empty')
  if (f.start !== null && !DATE.test(f.start)) addIssue(b, line, 'start_date', `"${f.start}" is not a date (YYYY-MM-DD)`)
  if (f.end !== null && !DATE.test(f.end)) addIssue(b, line, 'end_date', `"${f.end}" is not a date (YYYY-MM-DD)`)
  const addresses = f.addresses.map((a) => checkAddress(b, line, a))
  if (b.issues.length > before || f.source === null || f.name === null) return null
  let id = `${sourceTag(f.source)}:${f.entityNumber ?? f.rowId ?? `row${line}`}`
  if (b.ids.has(id)) id = `${id}#${line}`
  b.ids.add(id)
  return {
    id,
    source: f.source,
    entityNumber: f.entityNumber,
    type: f.type,
    name: f.name,
    altNames: f.altNames,
    programs: f.programs,
    addresses,
    federalRegisterNotice: f.frn,
    startDate: f.start,
    endDate: f.end,
    sourceListUrl: f.listUrl,
    websites: f.websites
  }
}

/** One CSV address, `address, city, state, postal_code, country`, read from the right (streets hold commas). */
function csvAddress (s: string): ScreeningAddress {
  const parts = s.split(',').map((p) => p.trim())
  const take = (): string | null => text(parts.pop())
  const country = take()
  const postalCode = take()
  const state = take()
  const city = take()
  return { address: text(parts.join(', ')), city, state, postalCode, country }
}

function csvWebsites (ids: string | null): string[] {
  const out: string[] = []
  for (const id of list(ids)) {
    const [type, number] = id.split(',').map((p) => p.trim())
    if (type !== undefined && /website/i.test(type) && number !== undefined) {
      const h = websiteHost(number)
      if (h !== null) out.push(h)
    }
  }
  return out
}

function refuse (what: string, issues: ImportIssue[]): never {
  throw new ScreeningImportError(what, issues)
}

export const cslCsv: ScreeningSource = {
  format: 'us-csl-csv',
  accepts (fileName, head) {
    return /\.csv$/i.test(fileName) || /^\uFEFF?"?(_id|source)"?,/.test(head)
  },
  parse (input) {
    let records
    try {
      records = parseCsv(input)
    } catch (err) {
      if (err instanceof CsvSyntaxError) refuse('not a valid CSV file', [{ line: err.line, field: `column ${err.column}`, message: err.message }])
      throw err
    }
    const header = records[0]
    if (header === undefined) refuse('empty list', [{ line: 1, field: 'header', message: 'the file is empty' }])
    const index = new Map<string, number>()
    header.cells.forEach((c, i) => index.set(c.trim(), i))
    const missing = CSL_COLUMNS.filter((c) => !index.has(c))
    if (missing.length > 0) {
      refuse('not a Consolidated Screening List CSV', missing.map((c) => ({ line: header.line, field: c, message: 'column missing from the header' })))
    }
    const b: Builder = { issues: [], ids: new Set() }
    const entries: ScreeningEntry[] = []
    const width = header.cells.length
    const idCol = index.get('_id')
    for (const r of records.slice(1)) {
      if (r.cells.length !== width) {
        addIssue(b, r.line, `column ${Math.min(r.cells.length, width) + 1}`, `${r.cells.length} fields where the header has ${width}`)
        continue
      }
      const cell = (c: Column): string | null => text(r.cells[index.get(c) ?? -1])
      const e = build(b, r.line, {
        rowId: idCol === undefined ? null : text(r.cells[idCol]),
        source: cell('source'),
        entityNumber: cell('entity_number'),
        type: cell('type'),
        name: cell('name'),
        altNames: list(cell('alt_names')),
        programs: list(cell('programs')),
        addresses: list(cell('addresses')).map(csvAddress),
        frn: cell('federal_register_notice'),
        start: cell('start_date'),
        end: cell('end_date'),
        listUrl: cell('source_list_url'),
        websites: csvWebsites(cell('ids'))
      })
      if (e !== null) entries.push(e)
    }
    if (b.issues.length > 0) refuse('malformed Consolidated Screening List CSV', b.issues)
    if (entries.length === 0) refuse('empty list', [{ line: header.line + 1, field: 'name', message: 'the file has a header and no entries' }])
    return { entries, rows: records.length - 1, date: null }
  }
}

type Json = Record<string, unknown>
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * The line each entry of the results array starts on (JSON.parse gives no positions): a scan that follows
 * strings and depth, so a refused entry names its line like the CSV does.
 */
function entryLines (src: string, topIsArray: boolean): number[] {
  const lines: number[] = []
  let line = 1
  let depth = 0
  let inStr = false
  let lastKey = ''
  let strStart = 0
  let resultsDepth = topIsArray ? 1 : -1
  for (let i = 0; i < src.length; i++) {
    const c = src[i]
    if (c === '\n') { line++; continue }
    if (inStr) {
      if (c === '\\') i++
      else if (c === '"') { inStr = false; if (depth === 1) lastKey = src.slice(strStart, i) }
      continue
    }
    if (c === '"') { inStr = true; strStart = i + 1 } else if (c === '{' || c === '[') {
      if (c === '[' && depth === 1 && !topIsArray && lastKey === 'results') resultsDepth = 2
      if (c === '{' && depth === resultsDepth) lines.push(line)
      depth++
    } else if (c === '}' || c === ']') {
      depth--
      if (c === ']' && depth === 1 && resultsDepth === 2) resultsDepth = -2
    }
  }
  return lines
}

function jsonStrings (b: Builder, line: number, field: string, v: unknown): string[] {
  if (v === null || v === undefined) return []
  if (typeof v === 'string') return list(v)
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return (v as string[]).map((s) => s.trim()).filter((s) => s !== '')
  addIssue(b, line, field, 'expected a list of strings')
  return []
}

function jsonText (b: Builder, line: number, field: string, v: unknown): string | null {
  if (v === null || v === undefined) return null
  if (typeof v === 'string') return text(v)
  if (typeof v === 'number') return String(v)
  addIssue(b, line, field, `expected a string, got ${Array.isArray(v) ? 'a list' : typeof v}`)
  return null
}

export const cslJson: ScreeningSource = {
  format: 'us-csl-json',
  accepts (fileName, head) {
    return /\.json$/i.test(fileName) || /^\uFEFF?\s*[[{]/.test(head)
  },
  parse (input) {
    const src = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input
    let doc: unknown
    try {
      doc = JSON.parse(src)
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      const pos = /position (\d+)/.exec(msg)
      const line = pos === null ? src.split('\n').length : src.slice(0, Number(pos[1])).split('\n').length
      refuse('not valid JSON', [{ line, field: 'json', message: msg }])
    }
    const results = Array.isArray(doc) ? doc : isObj(doc) ? doc.results : undefined
    if (!Array.isArray(results)) refuse('not a Consolidated Screening List JSON', [{ line: 1, field: 'results', message: 'expected an array of entries, or an object with one in "results"' }])
    const lines = entryLines(src, Array.isArray(doc))
    const b: Builder = { issues: [], ids: new Set() }
    const entries: ScreeningEntry[] = []
    results.forEach((r: unknown, i: number) => {
      const line = lines[i] ?? 1
      if (!isObj(r)) { addIssue(b, line, `results[${i}]`, 'expected an object'); return }
      const addresses: ScreeningAddress[] = []
      if (Array.isArray(r.addresses)) {
        for (const a of r.addresses) {
          if (!isObj(a)) { addIssue(b, line, 'addresses', 'expected objects with address, city, state, postal_code, country'); continue }
          addresses.push({
            address: jsonText(b, line, 'addresses.address', a.address),
            city: jsonText(b, line, 'addresses.city', a.city),
            state: jsonText(b, line, 'addresses.state', a.state),
            postalCode: jsonText(b, line, 'addresses.postal_code', a.postal_code),
            country: jsonText(b, line, 'addresses.country', a.country)
          })
        }
      } else if (r.addresses !== undefined && r.addresses !== null) addIssue(b, line, 'addresses', 'expected a list')
      const websites: string[] = []
      if (Array.isArray(r.ids)) {
        for (const id of r.ids) {
          if (isObj(id) && typeof id.type === 'string' && /website/i.test(id.type) && typeof id.number === 'string') {
            const h = websiteHost(id.number)
            if (h !== null) websites.push(h)
          }
        }
      }
      const e = build(b, line, {
        rowId: jsonText(b, line, '_id', r._id ?? r.id),
        source: jsonText(b, line, 'source', r.source),
        entityNumber: jsonText(b, line, 'entity_number', r.entity_number),
        type: jsonText(b, line, 'type', r.type),
        name: jsonText(b, line, 'name', r.name),
        altNames: jsonStrings(b, line, 'alt_names', r.alt_names),
        programs: jsonStrings(b, line, 'programs', r.programs),
        addresses,
        frn: jsonText(b, line, 'federal_register_notice', r.federal_register_notice),
        start: jsonText(b, line, 'start_date', r.start_date),
        end: jsonText(b, line, 'end_date', r.end_date),
        listUrl: jsonText(b, line, 'source_list_url', r.source_list_url),
        websites
      })
      if (e !== null) entries.push(e)
    })
    if (b.issues.length > 0) refuse('malformed Consolidated Screening List JSON', b.issues)
    if (entries.length === 0) refuse('empty list', [{ line: 1, field: 'results', message: 'no entries' }])
    return { entries, rows: results.length, date: isObj(doc) ? listDate(doc) : null }
  }
}

/** The newest `source_last_updated` / `last_imported` of `sources_used`, when the file carries them. */
function listDate (doc: Json): string | null {
  const dates: number[] = []
  const used = doc.sources_used
  if (Array.isArray(used)) {
    for (const s of used) {
      if (!isObj(s)) continue
      for (const k of ['source_last_updated', 'last_imported']) {
        const t = typeof s[k] === 'string' ? Date.parse(s[k] as string) : Number.NaN
        if (Number.isFinite(t)) dates.push(t)
      }
    }
  }
  return dates.length === 0 ? null : new Date(Math.max(...dates)).toISOString()
}

/** The formats `geogate screening import` knows, tried in order. */
export const SOURCES: readonly ScreeningSource[] = [cslCsv, cslJson]

export function sourceFor (fileName: string, input: string, format?: string): ScreeningSource {
  if (format !== undefined) {
    const s = SOURCES.find((x) => x.format === format)
    if (s === undefined) refuse('unknown list format', [{ line: 1, field: 'format', message: `"${format}"; known: ${SOURCES.map((x) => x.format).join(', ')}` }])
    return s
  }
  const head = input.slice(0, 256)
  const s = SOURCES.find((x) => x.accepts(fileName, head))
  if (s === undefined) refuse('unknown list format', [{ line: 1, field: 'format', message: 'neither a CSV with the published header nor JSON' }])
  return s
}
