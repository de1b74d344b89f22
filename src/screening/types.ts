/*
 * Denied-party screening: the lists, what a match is, and the parser interface a list format implements.
 * A list is parsed whole and checked before anything is stored, so a half-read or malformed file never
 * replaces the list in service.
 */

export interface ScreeningAddress {
  address: string | null
  city: string | null
  state: string | null
  postalCode: string | null
  /** ISO 3166-1 alpha-2, as the lists publish it */
  country: string | null
}

/** One party on a list, in the fields the gateway keeps (names, where, which list and why). */
export interface ScreeningEntry {
  /** unique within the list: `<source abbreviation>:<entity_number or _id or row>` */
  id: string
  /** the list it is on, e.g. "Entity List (EL) - Bureau of Industry and Security" */
  source: string
  entityNumber: string | null
  type: string | null
  name: string
  altNames: string[]
  programs: string[]
  addresses: ScreeningAddress[]
  federalRegisterNotice: string | null
  startDate: string | null
  endDate: string | null
  sourceListUrl: string | null
  /** web sites named among the ids (type "Website"), lower case, without scheme and www. */
  websites: string[]
}

/** A list in service: its entries and where they came from. */
export interface ScreeningListMeta {
  /** store version; increases with every import */
  version: number
  /** the list's own date (from the file, or the download's date given at import), ISO 8601 */
  date: string
  /** data rows read from the file */
  rows: number
  entries: number
  /** name of the format that parsed it, e.g. `us-csl-csv` */
  format: string
  /** distinct source lists and their row counts */
  sources: Record<string, number>
  importedAt: string
  /** sha256 hex of the file */
  sha256: string
  file: string | null
}

export interface ScreeningList { meta: ScreeningListMeta, entries: ScreeningEntry[] }

/** One problem in a list file: where (1-based line, column name) and what. */
export interface ImportIssue { line: number, field: string, message: string }

/** A malformed list: nothing was stored; `issues` names each line and field (at most the first 50). */
export class ScreeningImportError extends Error {
  readonly issues: ImportIssue[]
  constructor (message: string, issues: ImportIssue[]) {
    super(`${message}: ` + issues.slice(0, 5).map((i) => `line ${i.line}, ${i.field}: ${i.message}`).join('; ') + (issues.length > 5 ? `; … ${issues.length - 5} more` : ''))
    this.name = 'ScreeningImportError'
    this.issues = issues.slice(0, 50)
  }
}

/** A list format. Other lists (the EU consolidated financial sanctions file, the UK list, …) implement this. */
export interface ScreeningSource {
  /** e.g. `us-csl-csv` */
  readonly format: string
  /** does this parser read this file? (by name and first bytes) */
  accepts (fileName: string, head: string): boolean
  /** every entry, or ScreeningImportError naming the lines and fields that are wrong */
  parse (text: string): { entries: ScreeningEntry[], rows: number, date: string | null }
}

/** What is screened: an organisation and what its key says about it. */
export interface Party {
  org: string
  country?: string | undefined
  domain?: string | undefined
}

export type Verdict = 'clear' | 'review' | 'block'

/** A hit: the list entry, its list, the name that matched and the score (0..1). */
export interface ScreeningMatch {
  entryId: string
  entryName: string
  /** the name or alt name that scored best */
  matchedName: string
  source: string
  programs: string[]
  score: number
  /** how the score was made: name similarity, and what the country and domain added */
  nameScore: number
  country: 'same' | 'different' | null
  domain: boolean
}

export interface ScreeningResult {
  verdict: Verdict
  /** best first; at most a handful */
  matches: ScreeningMatch[]
  /** list version and date the party was screened against; null when no list is loaded */
  listVersion: number | null
  listDate: string | null
}
