/**
 * The GeoIP service: MMDB layers read with `maxmind` (mmdb-lib), normalised into GeoResult, hot-swapped.
 *
 *   file change ─► stat differs? ─► read ─► verify (off the request path, yields) ─► new Reader ─► swap one reference
 *                                               └─ broken: error logged, metric, old layer stays in service
 *
 * Layers are consulted in configured order; for each field the first layer that knows it wins, anonymizer flags
 * are OR-ed (schema: "later files add fields earlier ones lack").
 */
import { EventEmitter } from 'node:events'
import type { Response } from 'maxmind'
import { basename } from 'node:path'
import type { Logger } from 'pino'
import type { GeoConfig } from '../config/schema/index.js'
import type { Metrics } from '../infra/metrics.js'
import { resolvePath } from '../config/load.js'
import { lookupAddress } from './address.js'
import { normaliseRecord, type LayerAnswer } from './normalise.js'
import { ANONYMIZER_TRAITS } from '../core/anonymizers.js'
import { GeoDatabaseError, embeddedDatabasePath, identityOf, loadLayer, type Layer } from './layer.js'
import { LayerWatcher } from './watch.js'
import { loadRegion, regionHits, type Region } from './regions.js'
import { type GeoDatabaseInfo, type GeoLookup, type GeoResult, type UnknownReason, unknownGeo } from './types.js'

export { GeoDatabaseError, embeddedDatabasePath, loadLayer }

const DAY_MS = 86_400_000
/** Normalised answers kept per layer, by data record (a few hundred bytes each; dropped whole when full). */
const ANSWER_CACHE_ENTRIES = 200_000
/** Staleness is re-evaluated this often even when nothing changes (a database ages in place). */
const AGE_CHECK_MS = 10 * 60_000

interface State {
  readonly layers: readonly Layer[]
  /** oldest build epoch (ISO) */
  readonly build: string | null
  /** ms epoch at which the oldest layer becomes older than maxAgeDays */
  readonly staleAt: number
}

export type ReloadEvent = { path: string, ok: true, build: string } | { path: string, ok: false, error: GeoDatabaseError }

export interface GeoOptions {
  paths: readonly string[]
  maxAgeDays: number
  failClosedWhenStale: boolean
  watch: boolean
  log: Logger
  metrics?: Metrics
  /** GeoJSON regions (geo.regions) matched on City coordinates */
  regions?: readonly Region[]
}

function stateOf (layers: readonly Layer[], maxAgeDays: number): State {
  if (layers.length === 0) return { layers, build: null, staleAt: Number.POSITIVE_INFINITY }
  const oldest = Math.min(...layers.map((l) => l.meta.buildEpoch.getTime()))
  return { layers, build: new Date(oldest).toISOString(), staleAt: oldest + maxAgeDays * DAY_MS }
}

export class GeoService extends EventEmitter implements GeoLookup {
  private state: State
  private readonly timers: NodeJS.Timeout[] = []
  private readonly watcher: LayerWatcher
  /** identity of the last file refused at each path */
  private readonly refused = new Map<string, string>()
  private wasStale = false
  private closed = false
  private readonly unknownCounters: Record<UnknownReason, { inc: () => void }> | null

  private constructor (layers: Layer[], private readonly opts: GeoOptions) {
    super()
    this.state = stateOf(layers, opts.maxAgeDays)
    this.watcher = new LayerWatcher(() => this.state.layers.map((l) => l.path), async (path) => { await this.reload(path) }, opts.log)
    const m = opts.metrics
    this.unknownCounters = m === undefined
      ? null
      : { not_found: m.geoUnknown.labels('not_found'), stale: m.geoUnknown.labels('stale'), invalid_ip: m.geoUnknown.labels('invalid_ip') }
  }

  /** Open every layer (refusing a broken one with an error naming its file), then watch the files. */
  static async open (opts: GeoOptions): Promise<GeoService> {
    const layers: Layer[] = []
    const embedded = embeddedDatabasePath()
    // the embedded default is checked by npm against the lockfile's integrity hash: a shallow check suffices
    for (const p of opts.paths) layers.push(await loadLayer(p, { deep: p !== embedded }))
    const svc = new GeoService(layers, opts)
    svc.checkAge()
    // the embedded default changes only with a reinstall, which restarts the gateway
    if (opts.watch) svc.watcher.start(new Set([embedded]))
    const age = setInterval(() => { svc.checkAge() }, AGE_CHECK_MS)
    age.unref()
    svc.timers.push(age)
    return svc
  }

  lookup (ip: string): GeoResult {
    const st = this.state
    if (this.opts.failClosedWhenStale && Date.now() >= st.staleAt) return this.unknown(st.build, 'stale')
    const addr = lookupAddress(ip)
    if (addr === null) return this.unknown(st.build, 'invalid_ip')
    const v4 = addr.v4
    const v6 = addr.bytes ?? null
    const text = addr.ip
    const res = unknownGeo(st.build)
    for (const layer of st.layers) {
      let off: number
      if (v6 === null) off = layer.walker.findV4(v4)
      else if (layer.meta.ipVersion === 4) continue // an IPv4 tree cannot answer for IPv6
      else off = layer.walker.findV6(v6)
      if (off < 0) continue
      let ans = layer.answers.get(off)
      if (ans === undefined) {
        ans = this.decode(layer, text)
        if (layer.answers.size >= ANSWER_CACHE_ENTRIES) layer.answers.clear()
        layer.answers.set(off, ans)
      }
      if (res.country === null && ans.country !== null) {
        res.country = ans.country
        res.subdivisions = ans.subdivisions.slice()
      } else if (res.subdivisions.length === 0 && ans.subdivisions.length > 0 && ans.country === res.country) {
        res.subdivisions = ans.subdivisions.slice()
      }
      // below the subdivision: from the first layer that knows it and agrees on the country
      if (ans.country === res.country && ans.country !== null) {
        if (res.city === undefined && ans.city != null) res.city = ans.city
        if (res.postalCode === undefined && ans.postalCode != null) res.postalCode = ans.postalCode
        if (res.location === undefined && ans.location != null) res.location = ans.location
      }
      if (res.registeredCountry === null) res.registeredCountry = ans.registeredCountry
      if (res.representedCountry === null) res.representedCountry = ans.representedCountry
      const a = ans.anonymizer
      if (a !== null) {
        const r = res.anonymizer
        for (const t of ANONYMIZER_TRAITS) r[t.flag] ||= a[t.flag]
        r.any ||= a.any
      }
    }
    const regions = this.opts.regions
    if (regions !== undefined && regions.length > 0 && res.location !== undefined) res.regions = regionHits(regions, res.location)
    if (res.country === null) {
      res.unknownReason = 'not_found'
      this.unknownCounters?.not_found.inc()
    }
    return res
  }

  private decode (layer: Layer, ip: string): LayerAnswer {
    let rec: Response | null = null
    try {
      rec = layer.reader.get(ip)
    } catch (err) { // verified files do not throw; never let a lookup fail a request
      this.opts.log.error({ err, file: layer.path }, 'GeoIP lookup failed')
    }
    return normaliseRecord(rec, layer.meta.databaseType)
  }

  private unknown (build: string | null, reason: UnknownReason): GeoResult {
    this.unknownCounters?.[reason].inc()
    return { ...unknownGeo(build), unknownReason: reason }
  }

  info (): GeoDatabaseInfo[] {
    const now = Date.now()
    return this.state.layers.map((l) => {
      const ageDays = (now - l.meta.buildEpoch.getTime()) / DAY_MS
      return {
        path: l.path,
        databaseType: l.meta.databaseType,
        buildEpoch: l.meta.buildEpoch.toISOString(),
        ageDays,
        stale: ageDays > this.opts.maxAgeDays,
        ipVersion: l.meta.ipVersion,
        nodeCount: l.meta.nodeCount,
        loadedAt: l.loadedAt.toISOString()
      }
    })
  }

  stale (): boolean {
    return Date.now() >= this.state.staleAt
  }

  /** Check every file now (what a watcher event or SIGHUP does); resolves when the checks are done. */
  async checkForChanges (): Promise<void> {
    await this.watcher.checkAll()
  }

  async close (): Promise<void> {
    this.closed = true
    for (const t of this.timers) clearInterval(t)
    await this.watcher.close()
  }

  /** Update the age gauges and log once when the databases become stale (and when they stop being stale). */
  private checkAge (): void {
    const info = this.info()
    const m = this.opts.metrics
    if (m !== undefined) {
      m.geodbAgeDays.reset()
      for (const i of info) m.geodbAgeDays.set({ database: i.databaseType, file: basename(i.path) }, Math.round(i.ageDays * 100) / 100)
    }
    const stale = this.stale()
    m?.geodbStale.set(stale ? 1 : 0)
    if (stale && !this.wasStale) {
      const old = info.filter((i) => i.stale).map((i) => ({ path: i.path, buildEpoch: i.buildEpoch, ageDays: Math.floor(i.ageDays) }))
      this.opts.log.warn({ databases: old, maxAgeDays: this.opts.maxAgeDays, failClosed: this.opts.failClosedWhenStale },
        this.opts.failClosedWhenStale
          ? 'GeoIP database older than geo.maxAgeDays: every location resolves as unknown until it is updated'
          : 'GeoIP database older than geo.maxAgeDays: update it (see geodb/README.md)')
    } else if (!stale && this.wasStale) {
      this.opts.log.info({ build: this.state.build }, 'GeoIP databases are current again')
    }
    this.wasStale = stale
  }

  private async reload (path: string): Promise<void> {
    const current = this.state.layers.find((l) => l.path === path)
    if (current === undefined || this.closed) return
    let identity: string
    try {
      identity = await identityOf(path)
    } catch {
      return // mid-rename or removed: keep serving the loaded copy; the next event or poll tries again
    }
    if (identity === current.identity || identity === this.refused.get(path)) return
    let fresh: Layer
    try {
      fresh = await loadLayer(path)
    } catch (err) {
      const error = err instanceof GeoDatabaseError ? err : new GeoDatabaseError(path, String(err), { cause: err })
      this.refused.set(path, identity) // reported once; a new file at this path is tried again
      this.opts.log.error({ file: path, reason: error.reason, inService: current.meta.buildEpoch.toISOString() },
        `${error.message}; the database loaded earlier stays in service`)
      this.opts.metrics?.geodbReloads.inc({ result: 'error' })
      this.emit('reload', { path, ok: false, error } satisfies ReloadEvent)
      return
    }
    if (this.closed) return
    // one reference assignment: a lookup sees either the old layers or the new ones, never a mix
    const layers = this.state.layers.map((l) => (l.path === path ? fresh : l))
    this.state = stateOf(layers, this.opts.maxAgeDays)
    this.opts.log.info({ file: path, databaseType: fresh.meta.databaseType, build: fresh.meta.buildEpoch.toISOString(), previous: current.meta.buildEpoch.toISOString() },
      'GeoIP database reloaded')
    this.opts.metrics?.geodbReloads.inc({ result: 'ok' })
    this.checkAge()
    this.emit('reload', { path, ok: true, build: fresh.meta.buildEpoch.toISOString() } satisfies ReloadEvent)
  }
}

/** The configured layers (or the embedded default), resolved against the config file's directory. */
export function geoPaths (config: Readonly<GeoConfig>, baseDir: string): string[] {
  return config.databases?.map((p) => resolvePath(baseDir, p)) ?? [embeddedDatabasePath()]
}

export async function openGeo (config: Readonly<GeoConfig>, baseDir: string, log: Logger, metrics?: Metrics): Promise<GeoService> {
  return await GeoService.open({
    paths: geoPaths(config, baseDir),
    maxAgeDays: config.maxAgeDays,
    failClosedWhenStale: config.failClosedWhenStale,
    watch: config.watch,
    log,
    metrics,
    regions: await Promise.all(Object.entries(config.regions ?? {}).map(async ([name, p]) => await loadRegion(name, resolvePath(baseDir, p))))
  })
}
