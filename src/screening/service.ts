/*
 * The list in service on this replica, and screening against it. The list itself lives in a store (Redis,
 * shared by every replica, or files); a switch made anywhere is announced and every replica loads the new
 * list (a poll of the pointer heals a missed message). Matching runs on this replica's index, in memory.
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { ScreeningConfig } from '../config/schema/screening.js'
import { ScreeningIndex } from './match.js'
import { sourceFor } from './csl.js'
import type { ScreeningStore } from './store.js'
import { ScreeningImportError, type Party, type ScreeningListMeta, type ScreeningResult, type Verdict } from './types.js'

const DAY_MS = 86_400_000

export interface ScreeningInfo extends ScreeningListMeta {
  ageDays: number
  stale: boolean
  /** names and alt names indexed */
  names: number
}

export interface ImportOptions {
  fileName: string
  /** the list's date when the file does not carry one (e.g. the download's date) */
  date?: string | undefined
  format?: string | undefined
  /** accept a list much shorter than the one in service */
  force?: boolean | undefined
}

export interface ScreeningServiceOptions {
  config: () => Readonly<ScreeningConfig>
  log: Logger
  /** the gateway's registry: the list's date, size and staleness are exported on /metrics */
  registry?: Registry
  pollMs?: number
}

export class ScreeningService {
  readonly #store: ScreeningStore
  readonly #opts: ScreeningServiceOptions
  readonly #log: Logger
  #list: { meta: ScreeningListMeta, index: ScreeningIndex } | null = null
  #timer: NodeJS.Timeout | null = null
  #loading: Promise<void> | null = null
  #wasStale = false
  readonly #imports: Counter<'result'> | null = null
  readonly #screened: Counter<'verdict'> | null = null

  constructor (store: ScreeningStore, opts: ScreeningServiceOptions) {
    this.#store = store
    this.#opts = opts
    this.#log = opts.log
    const registers = opts.registry === undefined ? [] : [opts.registry]
    if (opts.registry !== undefined) {
      const info = (): ScreeningInfo | null => this.info()
      const gauge = (name: string, help: string, read: (i: ScreeningInfo) => number): void => {
        new Gauge({ name, help, registers, collect () { const i = info(); if (i !== null) this.set(read(i)) } })
      }
      gauge('geogate_screening_list_entries', 'Entries of the denied-party list in service', (i) => i.entries)
      gauge('geogate_screening_list_rows', 'Rows read from the list file in service', (i) => i.rows)
      gauge('geogate_screening_list_timestamp_seconds', 'Date of the denied-party list in service (Unix time)', (i) => Date.parse(i.date) / 1000)
      gauge('geogate_screening_list_version', 'Store version of the list in service (the same on every replica once loaded)', (i) => i.version)
      new Gauge({
        name: 'geogate_screening_list_stale',
        help: '1 when the list is older than screening.maxAgeDays, or no list was ever imported',
        registers,
        collect () { this.set(info()?.stale === false ? 0 : 1) }
      })
      this.#imports = new Counter({ name: 'geogate_screening_imports_total', help: 'List imports by result (ok, refused, failed)', labelNames: ['result'] as const, registers })
      this.#screened = new Counter({ name: 'geogate_screening_checks_total', help: 'Parties screened, by verdict (clear, review, block, no_list)', labelNames: ['verdict'] as const, registers })
    }
  }

  static async open (store: ScreeningStore, opts: ScreeningServiceOptions): Promise<ScreeningService> {
    const s = new ScreeningService(store, opts)
    await s.refresh()
    store.watch(() => { void s.refresh() })
    s.#timer = setInterval(() => { void s.refresh() }, opts.pollMs ?? 5000)
    s.#timer.unref()
    return s
  }

  get shared (): boolean { return this.#store.shared }

  info (): ScreeningInfo | null {
    const l = this.#list
    if (l === null) return null
    const ageDays = (Date.now() - Date.parse(l.meta.date)) / DAY_MS
    return { ...l.meta, ageDays: Math.round(ageDays * 100) / 100, stale: ageDays > this.#opts.config().maxAgeDays, names: l.index.names }
  }

  /** Re-read the pointer; load the list when it moved. A store that cannot be read keeps the list in service. */
  async refresh (): Promise<void> {
    if (this.#loading !== null) { await this.#loading; return }
    this.#loading = (async () => {
      try {
        const meta = await this.#store.current()
        if (meta !== null && meta.version !== this.#list?.meta.version) {
          const list = await this.#store.load(meta)
          this.#list = { meta: list.meta, index: new ScreeningIndex(list.entries) }
          this.#log.info({ version: meta.version, date: meta.date, entries: meta.entries }, 'screening list loaded')
        }
      } catch (err) {
        this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'screening list could not be read; keeping the one in service')
      } finally {
        this.#loading = null
        this.#checkStale()
      }
    })()
    await this.#loading
  }

  #checkStale (): void {
    const i = this.info()
    const stale = i !== null && i.stale
    if (stale && !this.#wasStale) this.#log.warn({ date: i.date, ageDays: Math.floor(i.ageDays), maxAgeDays: this.#opts.config().maxAgeDays }, 'screening list is stale: import a current one')
    else if (!stale && this.#wasStale) this.#log.info('screening list is current again')
    this.#wasStale = stale
  }

  /** Screen a party: block, review or clear, with every match at or above reviewScore. */
  screen (party: Party): ScreeningResult {
    const l = this.#list
    if (l === null) {
      this.#screened?.inc({ verdict: 'no_list' })
      return { verdict: 'clear', matches: [], listVersion: null, listDate: null }
    }
    const cfg = this.#opts.config()
    const matches = l.index.match(party, Math.min(cfg.reviewScore, cfg.blockScore), 5)
    const top = matches[0]?.score ?? 0
    const verdict: Verdict = top >= cfg.blockScore ? 'block' : matches.length > 0 ? 'review' : 'clear'
    this.#screened?.inc({ verdict })
    return { verdict, matches, listVersion: l.meta.version, listDate: l.meta.date }
  }

  /**
   * Parse and check a list file, store it and switch every replica to it. Throws ScreeningImportError (line and
   * field of each problem) before anything is stored; the list in service stays.
   */
  async import (text: string, opts: ImportOptions): Promise<ScreeningListMeta> {
    try {
      const source = sourceFor(opts.fileName, text, opts.format)
      const parsed = source.parse(text)
      const current = this.#list?.meta ?? await this.#store.current().catch(() => null)
      const ratio = this.#opts.config().minRowsRatio
      if (current !== null && opts.force !== true && parsed.rows < current.rows * ratio) {
        throw new ScreeningImportError('list refused', [{
          line: parsed.rows + 1, field: 'rows',
          message: `${parsed.rows} rows where the list in service has ${current.rows} (under screening.minRowsRatio ${ratio}; a truncated download?) — import with --force if it is right`
        }])
      }
      const date = parsed.date ?? (opts.date !== undefined ? isoDate(opts.date) : new Date().toISOString())
      // list names come from the file: counted in a Map, never as keys of a plain object
      const counts = new Map<string, number>()
      for (const e of parsed.entries) counts.set(e.source, (counts.get(e.source) ?? 0) + 1)
      const sources: Record<string, number> = Object.assign(Object.create(null) as Record<string, number>, Object.fromEntries(counts))
      const meta = await this.#store.put({
        date,
        rows: parsed.rows,
        entries: parsed.entries.length,
        format: source.format,
        sources,
        importedAt: new Date().toISOString(),
        sha256: createHash('sha256').update(text).digest('hex'),
        file: opts.fileName
      }, parsed.entries)
      this.#list = { meta, index: new ScreeningIndex(parsed.entries) }
      this.#checkStale()
      this.#imports?.inc({ result: 'ok' })
      this.#log.info({ version: meta.version, date: meta.date, entries: meta.entries, format: meta.format }, 'screening list imported')
      return meta
    } catch (err) {
      this.#imports?.inc({ result: err instanceof ScreeningImportError ? 'refused' : 'failed' })
      throw err
    }
  }

  async close (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    await this.#store.close()
  }
}

function isoDate (d: string): string {
  const t = Date.parse(d)
  if (!Number.isFinite(t)) throw new ScreeningImportError('list refused', [{ line: 0, field: 'date', message: `"${d}" is not a date` }])
  return new Date(t).toISOString()
}
