/**
 * The GeoIP service: MMDB layers read with `maxmind` (mmdb-lib), normalised into GeoResult, hot-swapped.
 *
 *   file change ─► stat differs? ─► read ─► verify (off the request path, yields) ─► new Reader ─► swap one reference
 *                                               └─ broken: error logged, metric, old layer stays in service
 *
 * Layers are consulted in configured order; for each field the first layer that knows it wins, anonymizer flags
 * are OR-ed (schema: "later files add fields earlier ones lack").
 */
import { GeoDatabaseError } from '../core/errors.js'
import { EventEmitter } from 'node:events'
import { watch, type FSWatcher } from 'node:fs'
import { createHash } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { Reader, type Response } from 'maxmind'
import type { Logger } from 'pino'
import type { GeoConfig } from '../config/schema/index.js'
import type { Metrics } from '../infra/metrics.js'
import { resolvePath } from '../config/load.js'
import { lookupAddress } from './address.js'
import { normaliseRecord, type LayerAnswer } from './normalise.js'
import { TreeWalker, parseIPv4, parseIPv6 } from './tree.js'
import { verifyMmdb, type MmdbMetadata } from './verify.js'
import { type GeoDatabaseInfo, type GeoLookup, type GeoResult, type UnknownReason, unknownGeo } from './types.js'

const DAY_MS = 86_400_000
/** Normalised answers kept per layer, by data record (a few hundred bytes each; dropped whole when full). */
const ANSWER_CACHE_ENTRIES = 200_000
/** Fallback check for changes fs.watch cannot see (symlink swaps of mounted volumes, network file systems). */
const POLL_MS = 60_000
/** Let a burst of events from one rename/copy settle before reading. */
const SETTLE_MS = 50
/** Staleness is re-evaluated this often even when nothing changes (a database ages in place). */
const AGE_CHECK_MS = 10 * 60_000
const TAIL_BYTES = 4096

/** The embedded default: the CC BY 4.0 country database that `npm ci` installs. */
export function embeddedDatabasePath (): string {
  const require = createRequire(import.meta.url)
  return join(dirname(require.resolve('@ip-location-db/geo-whois-asn-country-mmdb/package.json')), 'geo-whois-asn-country.mmdb')
}

export { GeoDatabaseError }

interface Layer {
  readonly path: string
  readonly reader: Reader<Response>
  readonly meta: MmdbMetadata
  /** ino:size:mtime of the file that was loaded */
  readonly identity: string
  readonly loadedAt: Date
  readonly walker: TreeWalker
  /** normalised answers by data-section offset of the record: decoded by mmdb-lib once, then served from here */
  readonly answers: Map<number, LayerAnswer>
}

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
}

/**
 * What tells one file from the next at a path: inode, size, mtime, and a hash of its tail (the metadata section
 * with build_epoch lives there). File timestamps are coarse and inodes are reused, so two updates in quick
 * succession can share the first three.
 */
async function identityOf (path: string): Promise<string> {
  const fh = await open(path, 'r')
  try {
    const s = await fh.stat()
    if (!s.isFile()) throw new Error('not a regular file')
    const n = Math.min(s.size, TAIL_BYTES)
    const tail = Buffer.alloc(n)
    await fh.read(tail, 0, n, s.size - n)
    return `${s.ino}:${s.size}:${s.mtimeMs}:${createHash('sha256').update(tail).digest('hex').slice(0, 16)}`
  } finally {
    await fh.close()
  }
}

/** Read, verify and open one database file; throws GeoDatabaseError naming the file. */
export async function loadLayer (path: string, opts: { deep?: boolean } = {}): Promise<Layer> {
  let buf: Buffer
  let identity: string
  try {
    identity = await identityOf(path)
    buf = await readFile(path)
  } catch (err) {
    throw new GeoDatabaseError(path, `cannot read it (${err instanceof Error ? err.message : String(err)})`, { cause: err })
  }
  if (buf[0] === 0x1f && buf[1] === 0x8b) throw new GeoDatabaseError(path, 'it is gzip-compressed; give the decompressed .mmdb file')
  let meta: MmdbMetadata
  let reader: Reader<Response>
  try {
    meta = await verifyMmdb(buf, opts)
    reader = new Reader<Response>(buf)
    // probe: one IPv4 and, for IPv6 databases, one IPv6 lookup through the reader that will serve requests
    reader.get('1.1.1.1')
    if (meta.ipVersion === 6) reader.get('2001:db8::1')
  } catch (err) {
    throw new GeoDatabaseError(path, `not a valid MaxMind DB file: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  return { path, reader, meta, identity, loadedAt: new Date(), walker: new TreeWalker(buf, meta), answers: new Map() }
}

function stateOf (layers: readonly Layer[], maxAgeDays: number): State {
  if (layers.length === 0) return { layers, build: null, staleAt: Number.POSITIVE_INFINITY }
  const oldest = Math.min(...layers.map((l) => l.meta.buildEpoch.getTime()))
  return { layers, build: new Date(oldest).toISOString(), staleAt: oldest + maxAgeDays * DAY_MS }
}

export class GeoService extends EventEmitter implements GeoLookup {
  private state: State
  private readonly watchers: FSWatcher[] = []
  private readonly timers: NodeJS.Timeout[] = []
  private readonly pending = new Map<string, NodeJS.Timeout>()
  /** one reload at a time per file; a change seen during a reload triggers one more check after it */
  private readonly reloading = new Map<string, Promise<void>>()
  private readonly again = new Set<string>()
  /** identity of the last file refused at each path */
  private readonly refused = new Map<string, string>()
  private wasStale = false
  private closed = false
  private readonly unknownCounters: Record<UnknownReason, { inc: () => void }> | null

  private constructor (layers: Layer[], private readonly opts: GeoOptions) {
    super()
    this.state = stateOf(layers, opts.maxAgeDays)
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
    if (opts.watch) svc.startWatching()
    const age = setInterval(() => { svc.checkAge() }, AGE_CHECK_MS)
    age.unref()
    svc.timers.push(age)
    return svc
  }

  lookup (ip: string): GeoResult {
    const st = this.state
    if (this.opts.failClosedWhenStale && Date.now() >= st.staleAt) return this.unknown(st.build, 'stale')
    // fast path: a plain dotted quad (what the client-ip stage hands over for IPv4 callers)
    let v4 = parseIPv4(ip)
    let v6: Uint8Array | null = null
    let text = ip
    if (v4 < 0) {
      const addr = lookupAddress(ip)
      if (addr === null) return this.unknown(st.build, 'invalid_ip')
      text = addr.ip
      if (addr.version === 4) v4 = parseIPv4(addr.ip)
      else v6 = addr.bytes ?? parseIPv6(addr.ip)
    }
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
      if (res.registeredCountry === null) res.registeredCountry = ans.registeredCountry
      if (res.representedCountry === null) res.representedCountry = ans.representedCountry
      const a = ans.anonymizer
      if (a !== null) {
        const r = res.anonymizer
        r.vpn ||= a.vpn
        r.tor ||= a.tor
        r.hosting ||= a.hosting
        r.publicProxy ||= a.publicProxy
        r.residentialProxy ||= a.residentialProxy
        r.any ||= a.any
      }
    }
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
    await Promise.all(this.state.layers.map(async (l) => { await this.check(l.path) }))
  }

  async close (): Promise<void> {
    this.closed = true
    for (const w of this.watchers) w.close()
    for (const t of this.timers) clearInterval(t)
    for (const t of this.pending.values()) clearTimeout(t)
    this.pending.clear()
    await Promise.allSettled([...this.reloading.values()])
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

  private startWatching (): void {
    const dirs = new Map<string, Set<string>>()
    const embedded = embeddedDatabasePath()
    for (const l of this.state.layers) {
      if (l.path === embedded) continue // changes only with a reinstall, which restarts the gateway
      const names = dirs.get(dirname(l.path)) ?? new Set<string>()
      names.add(basename(l.path))
      dirs.set(dirname(l.path), names)
    }
    // Watch directories, not files: updaters replace a file by renaming a new one over it (a new inode).
    for (const [dir, names] of dirs) {
      try {
        const w = watch(dir, { persistent: true }, (_event, filename) => {
          const name = filename === null ? null : String(filename)
          for (const l of this.state.layers) {
            if (dirname(l.path) === dir && (name === null || basename(l.path) === name)) this.schedule(l.path)
          }
        })
        w.on('error', (err) => { this.opts.log.error({ err, dir }, 'GeoIP database directory watch failed; polling only') })
        this.watchers.push(w)
      } catch (err) {
        this.opts.log.error({ err, dir }, 'cannot watch GeoIP database directory; polling only')
      }
    }
    const poll = setInterval(() => { void this.checkForChanges() }, POLL_MS)
    poll.unref()
    this.timers.push(poll)
  }

  private schedule (path: string): void {
    if (this.closed || this.pending.has(path)) return
    const t = setTimeout(() => {
      this.pending.delete(path)
      void this.check(path)
    }, SETTLE_MS)
    this.pending.set(path, t)
  }

  private async check (path: string): Promise<void> {
    const running = this.reloading.get(path)
    if (running !== undefined) {
      this.again.add(path)
      await running
      return
    }
    const p = this.reload(path).finally(() => {
      this.reloading.delete(path)
      if (this.again.delete(path) && !this.closed) void this.check(path)
    })
    this.reloading.set(path, p)
    await p
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
    metrics
  })
}
