/**
 * The limit store contract: a small promise interface with two implementations (memory-store.ts for one
 * replica, redis-store.ts for many) that pass one contract suite (test/limits/store-contract.test.ts).
 *
 * A request is a list of counters checked and charged all-or-nothing in one step:
 *   window  — sliding 60-bucket window (requests or tokens per minute); exact to one bucket (1 s for a minute)
 *   period  — calendar hour / day / month in UTC (location token quotas)
 *   lease   — concurrency: one lease per request, expiring unless renewed, so a dead replica leaks nothing
 */
export type CounterKind = 'window' | 'period' | 'lease'
export type Period = 'hour' | 'day' | 'month'

export interface CounterSpec {
  kind: CounterKind
  /** full store key; `tag` is the hash tag inside it (all keys of one tag share a Redis Cluster slot) */
  key: string
  tag: string
  limit: number
  /** units charged on admission (1 for requests, the token reservation for tokens); leases always 1 */
  cost: number
  /** window: window length in ms; lease: lease ttl in ms; period: unused */
  ms: number
  period?: Period | undefined
}

export interface CounterState {
  limit: number
  /** what is left after this request (when admitted) or now (when refused) */
  remaining: number
  /** ms until everything counted now has left the window / the period ends; 0 for leases */
  resetMs: number
  /** where the charge landed (window bucket, period id): settle() reconciles there */
  mark: string
}

export interface AcquireResult {
  allowed: boolean
  /** index in the plan of the first counter that refused, -1 when admitted */
  refused: number
  /** ms until the refusing counter can take this request again (0 when admitted) */
  retryAfterMs: number
  states: CounterState[]
}

export interface SettleItem {
  counter: CounterSpec
  mark: string
  /** units to add (positive: used more than reserved) or give back (negative); ignored for leases */
  delta: number
}

export interface LimitStore {
  readonly name: 'memory' | 'redis'
  /** check every counter and, only if all admit, charge them all; leaseId names this request's leases */
  acquire (counters: readonly CounterSpec[], leaseId: string): Promise<AcquireResult>
  /** release leases and reconcile token charges; safe to call for leases already gone */
  settle (items: readonly SettleItem[], leaseId: string): Promise<void>
  /** push the expiry of live leases forward (long requests); no-op for leases already gone */
  renew (counters: readonly CounterSpec[], leaseId: string): Promise<void>
  close (): Promise<void>
}

/** UTC calendar period containing `nowMs`: its id (stable string) and its end in ms. */
export function periodOf (period: Period, nowMs: number): { id: string, endMs: number } {
  if (period === 'hour') {
    const h = Math.floor(nowMs / 3_600_000)
    return { id: String(h), endMs: (h + 1) * 3_600_000 }
  }
  if (period === 'day') {
    const d = Math.floor(nowMs / 86_400_000)
    return { id: String(d), endMs: (d + 1) * 86_400_000 }
  }
  const t = new Date(nowMs)
  const y = t.getUTCFullYear()
  const m = t.getUTCMonth()
  return { id: String(y * 12 + m), endMs: Date.UTC(y, m + 1, 1) }
}

/** A window is 60 buckets: per-minute limits count in 1 s buckets. */
export const WINDOW_BUCKETS = 60
