import { periodOf, WINDOW_BUCKETS, type AcquireResult, type CounterSpec, type CounterState, type LimitStore, type SettleItem } from './store.js'

interface Window { buckets: Map<number, number>, bms: number }
interface PeriodCounter { id: string, n: number }
type Leases = Map<string, number>

/**
 * The store for one replica (no Redis configured), and the local fallback when Redis is unreachable and a
 * tier fails open. Same semantics as the Redis scripts, checked by the same contract suite; all state lives
 * on the instance. Synchronous inside, so each acquire is atomic on Node's single thread.
 */
export class MemoryStore implements LimitStore {
  readonly name = 'memory'
  readonly #windows = new Map<string, Window>()
  readonly #periods = new Map<string, PeriodCounter>()
  readonly #leases = new Map<string, Leases>()
  readonly #now: () => number
  #sweeps = 0

  /** the clock defaults to a monotonic one (wall-clock steps must not expire or revive counts) */
  constructor (now: () => number = () => performance.timeOrigin + performance.now()) { this.#now = now }

  async acquire (counters: readonly CounterSpec[], leaseId: string): Promise<AcquireResult> {
    const now = this.#now()
    if (++this.#sweeps % 1024 === 0) this.#sweep(now)
    const used: number[] = []
    const marks: string[] = []
    const resets: number[] = []
    let refused = -1
    let retryAfterMs = 0
    counters.forEach((c, i) => {
      const need = Math.max(c.cost, 1)
      if (c.kind === 'window') {
        const bms = Math.max(1, Math.floor(c.ms / WINDOW_BUCKETS))
        const cur = Math.floor(now / bms)
        const w = this.#window(c.key, bms)
        let sum = 0
        const live: number[] = []
        for (const [b, v] of w.buckets) {
          if (b <= cur - WINDOW_BUCKETS) w.buckets.delete(b)
          else { sum += v; live.push(b) }
        }
        live.sort((a, b) => a - b)
        used[i] = sum
        marks[i] = String(cur)
        const newest = live.at(-1)
        resets[i] = newest === undefined ? 0 : (newest + WINDOW_BUCKETS) * bms - now
        if (refused < 0 && sum + need > c.limit) {
          refused = i
          if (need > c.limit) retryAfterMs = c.ms
          else {
            const over = sum + need - c.limit
            let acc = 0
            for (const b of live) {
              acc += w.buckets.get(b) ?? 0
              if (acc >= over) { retryAfterMs = (b + WINDOW_BUCKETS) * bms - now; break }
            }
          }
        }
      } else if (c.kind === 'period') {
        const p = periodOf(c.period ?? 'day', now)
        const cur = this.#periods.get(c.key)
        const sum = cur !== undefined && cur.id === p.id ? cur.n : 0
        used[i] = sum
        marks[i] = p.id
        resets[i] = p.endMs - now
        if (refused < 0 && sum + need > c.limit) { refused = i; retryAfterMs = p.endMs - now }
      } else {
        const set = this.#leaseSet(c.key)
        for (const [id, exp] of set) if (exp <= now) set.delete(id)
        used[i] = set.size
        marks[i] = leaseId
        resets[i] = 0
        if (refused < 0 && set.size + 1 > c.limit) { refused = i; retryAfterMs = 1000 }
      }
    })
    const states: CounterState[] = counters.map((c, i) => {
      let charged = 0
      const mark = marks[i] ?? ''
      if (refused < 0) {
        if (c.kind === 'window') {
          const w = this.#window(c.key, Math.max(1, Math.floor(c.ms / WINDOW_BUCKETS)))
          const b = Number(mark)
          if (c.cost > 0) w.buckets.set(b, (w.buckets.get(b) ?? 0) + c.cost)
          resets[i] = c.ms
          charged = c.cost
        } else if (c.kind === 'period') {
          const cur = this.#periods.get(c.key)
          if (cur !== undefined && cur.id === mark) cur.n += c.cost
          else this.#periods.set(c.key, { id: mark, n: c.cost })
          charged = c.cost
        } else {
          this.#leaseSet(c.key).set(leaseId, now + c.ms)
          charged = 1
        }
      }
      return { limit: c.limit, remaining: Math.max(0, c.limit - (used[i] ?? 0) - charged), resetMs: resets[i] ?? 0, mark }
    })
    return { allowed: refused < 0, refused, retryAfterMs, states }
  }

  async settle (items: readonly SettleItem[], leaseId: string): Promise<void> {
    const now = this.#now()
    for (const { counter: c, mark, delta } of items) {
      if (c.kind === 'lease') {
        this.#leases.get(c.key)?.delete(leaseId)
      } else if (c.kind === 'window' && delta !== 0) {
        const bms = Math.max(1, Math.floor(c.ms / WINDOW_BUCKETS))
        const cur = Math.floor(now / bms)
        const w = this.#window(c.key, bms)
        const b = Number(mark)
        const v = w.buckets.get(b)
        if (v !== undefined && b > cur - WINDOW_BUCKETS) {
          const nv = v + delta
          if (nv > 0) w.buckets.set(b, nv)
          else w.buckets.delete(b)
        } else if (delta > 0) {
          w.buckets.set(cur, (w.buckets.get(cur) ?? 0) + delta)
        }
      } else if (c.kind === 'period' && delta !== 0) {
        const cur = this.#periods.get(c.key)
        if (cur !== undefined && cur.id === mark) cur.n = Math.max(0, cur.n + delta)
        else if (delta > 0) {
          const id = periodOf(c.period ?? 'day', now).id
          if (cur !== undefined && cur.id === id) cur.n += delta
          else this.#periods.set(c.key, { id, n: delta })
        }
      }
    }
  }

  async renew (counters: readonly CounterSpec[], leaseId: string): Promise<void> {
    const now = this.#now()
    for (const c of counters) {
      const set = this.#leases.get(c.key)
      if (c.kind === 'lease' && set?.has(leaseId) === true) set.set(leaseId, now + c.ms)
    }
  }

  async close (): Promise<void> {
    this.#windows.clear()
    this.#periods.clear()
    this.#leases.clear()
  }

  #window (key: string, bms: number): Window {
    let w = this.#windows.get(key)
    if (w === undefined) { w = { buckets: new Map(), bms }; this.#windows.set(key, w) }
    return w
  }

  #leaseSet (key: string): Leases {
    let s = this.#leases.get(key)
    if (s === undefined) { s = new Map(); this.#leases.set(key, s) }
    return s
  }

  /** Drop counters nothing can read any more, so memory stays bounded by the live keys. */
  #sweep (now: number): void {
    for (const [k, w] of this.#windows) {
      const cur = Math.floor(now / w.bms)
      for (const b of w.buckets.keys()) if (b <= cur - WINDOW_BUCKETS) w.buckets.delete(b)
      if (w.buckets.size === 0) this.#windows.delete(k)
    }
    for (const [k, s] of this.#leases) {
      for (const [id, exp] of s) if (exp <= now) s.delete(id)
      if (s.size === 0) this.#leases.delete(k)
    }
  }
}
