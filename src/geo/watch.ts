/**
 * Noticing that a database file changed: a watch on each file's directory (updaters rename a new file over the
 * old one, a new inode, so watching the file itself would miss it), a slow poll for what watches cannot see
 * (symlink swaps of mounted volumes, network file systems), a short settle so one rename's burst of events
 * gives one check, and at most one check running per file (a change seen during one triggers one more after it).
 */
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { Logger } from 'pino'

/** Fallback check for changes fs.watch cannot see. */
const POLL_MS = 60_000
/** Let a burst of events from one rename/copy settle before reading. */
const SETTLE_MS = 50

export class LayerWatcher {
  readonly #watchers: FSWatcher[] = []
  #poll: NodeJS.Timeout | null = null
  readonly #pending = new Map<string, NodeJS.Timeout>()
  readonly #running = new Map<string, Promise<void>>()
  readonly #again = new Set<string>()
  #closed = false

  /** `paths()`: the files in service now; `check(path)`: re-read one if it changed (never throws). */
  constructor (private readonly paths: () => readonly string[], private readonly check: (path: string) => Promise<void>, private readonly log: Logger) {}

  start (skip: ReadonlySet<string>): void {
    const dirs = new Set<string>()
    for (const p of this.paths()) if (!skip.has(p)) dirs.add(dirname(p))
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: true }, (_event, filename) => {
          const name = filename === null ? null : String(filename)
          for (const p of this.paths()) {
            if (!skip.has(p) && dirname(p) === dir && (name === null || basename(p) === name)) this.#schedule(p)
          }
        })
        w.on('error', (err) => { this.log.error({ err, dir }, 'GeoIP database directory watch failed; polling only') })
        this.#watchers.push(w)
      } catch (err) {
        this.log.error({ err, dir }, 'cannot watch GeoIP database directory; polling only')
      }
    }
    this.#poll = setInterval(() => { void this.checkAll() }, POLL_MS)
    this.#poll.unref()
  }

  /** Check every file now (SIGHUP, POST /admin/reload, the poll). */
  async checkAll (): Promise<void> {
    await Promise.all(this.paths().map(async (p) => { await this.checkOne(p) }))
  }

  async checkOne (path: string): Promise<void> {
    const running = this.#running.get(path)
    if (running !== undefined) {
      this.#again.add(path)
      await running
      return
    }
    const p = this.check(path).finally(() => {
      this.#running.delete(path)
      if (this.#again.delete(path) && !this.#closed) void this.checkOne(path)
    })
    this.#running.set(path, p)
    await p
  }

  async close (): Promise<void> {
    this.#closed = true
    for (const w of this.#watchers) w.close()
    if (this.#poll !== null) clearInterval(this.#poll)
    for (const t of this.#pending.values()) clearTimeout(t)
    this.#pending.clear()
    await Promise.allSettled([...this.#running.values()])
  }

  #schedule (path: string): void {
    if (this.#closed || this.#pending.has(path)) return
    const t = setTimeout(() => {
      this.#pending.delete(path)
      void this.checkOne(path)
    }, SETTLE_MS)
    this.#pending.set(path, t)
  }
}
