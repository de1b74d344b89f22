import type { Result, ClientContext, Command, Redis } from 'ioredis'
import { createHash } from 'node:crypto'
import { isCluster, type RedisClient } from '../infra/redis.js'
import type { AcquireResult, CounterSpec, CounterState, LimitStore, SettleItem } from './store.js'
import { ACQUIRE_LUA } from './lua/acquire.js'
import { SETTLE_LUA, RENEW_LUA } from './lua/settle.js'

declare module 'ioredis' {
  interface RedisCommander<Context extends ClientContext> {
    geogateAcquire (numKeys: number, ...args: Array<string | number>): Result<Array<string | number>, Context>
    geogateSettle (numKeys: number, ...args: Array<string | number>): Result<number, Context>
    geogateRenew (numKeys: number, ...args: Array<string | number>): Result<number, Context>
  }
}

/** A raw EVALSHA (acquire, settle, renew) for a standalone or Sentinel connection, from its bytes built in one buffer. */
interface RawCommand extends Command {
  /** a corked command: its time starts now, as its bytes leave (see RedisStore #uncork) */
  start (): void
  /** answered: its timer goes */
  stop (): void
}
type RawCommandClass = new (bytes: Buffer, corked: boolean) => RawCommand

/**
 * A Command whose wire form is given: ioredis's own toWritable concatenates each argument into a string (a few
 * dozen intermediate strings per call), and defineCommand's script wrapper adds a closure and a promise per call.
 * The reply and every rule of the connection (offline queue, ordering) stay ioredis's; so does commandTimeout, but
 * judged as the event loop sees it, not by the timer alone:
 *
 * - its time starts when its bytes leave: a command corked until the turn's check phase has not been sent while a
 *   long turn (a burst of requests) runs;
 * - it is judged after the turn's I/O (setImmediate runs after the poll phase): when the loop was held up past the
 *   timeout, expired timers run before the socket reads that came in meanwhile, and a reply already there would be
 *   taken for a slow Redis. Under load that tripped the breaker (limiter.breakerMs of decisions by failMode, 503 for
 *   a failMode closed tier) while Redis answered in microseconds.
 */
function rawCommandClass (Base: typeof Command): RawCommandClass {
  return class RawCommand extends Base {
    readonly #bytes: Buffer
    #corked: boolean
    #timeoutMs: number | null = null
    #timer: NodeJS.Timeout | null = null
    constructor (bytes: Buffer, corked: boolean) {
      super('evalsha', [], { replyEncoding: 'utf8' })
      this.#bytes = bytes
      this.#corked = corked
    }

    override toWritable (): Buffer { return this.#bytes }

    /** called by ioredis as the command is queued, with commandTimeout */
    override setTimeout (ms: number): void {
      this.#timeoutMs = ms
      if (!this.#corked) this.start()
    }

    start (): void {
      this.#corked = false
      const ms = this.#timeoutMs
      if (ms === null || this.#timer !== null || this.isResolved) return
      this.#timer = setTimeout(() => {
        setImmediate(() => { if (!this.isResolved) this.reject(new Error('Command timed out')) })
      }, ms)
    }

    stop (): void {
      if (this.#timer !== null) clearTimeout(this.#timer)
      this.#timer = null
    }
  }
}

/** RESP array of bulk strings, in one buffer. */
function respCommand (parts: readonly string[]): Buffer {
  const lens = parts.map((p) => Buffer.byteLength(p))
  let size = 3 + String(parts.length).length
  for (const n of lens) size += 5 + String(n).length + n
  const buf = Buffer.allocUnsafe(size)
  let at = buf.write('*' + String(parts.length) + '\r\n', 0, 'latin1')
  for (let i = 0; i < parts.length; i++) {
    at += buf.write('$' + String(lens[i]) + '\r\n', at, 'latin1')
    at += buf.write(parts[i] as string, at, 'utf8')
    at += buf.write('\r\n', at, 'latin1')
  }
  return buf
}

/**
 * One RESP bulk string (its length line, the bytes, CRLF) in a buffer of its own: these are kept, and a small buffer
 * from Buffer.allocUnsafe is a slice of an 8 KB pool block, which a kept slice would keep alive whole.
 */
function bulk (s: string): Buffer {
  const n = Buffer.byteLength(s)
  const head = '$' + String(n) + '\r\n'
  const buf = Buffer.allocUnsafeSlow(head.length + n + 2)
  buf.write(head, 0, 'latin1')
  buf.write(s, head.length, 'utf8')
  buf.write('\r\n', head.length + n, 'latin1')
  return buf
}

/** ASCII text in a buffer of its own (see bulk) */
function bulkOwn (ascii: string): Buffer {
  const buf = Buffer.allocUnsafeSlow(ascii.length)
  buf.write(ascii, 0, 'latin1')
  return buf
}

/** the bulk strings of counter keys, kept: a request's keys are the same for every request of its key and tier */
const KEYS_KEPT = 50_000

const NO_RAW = Symbol('no raw command')
const SETTLED = Promise.resolve()
const ACQUIRE_SHA = createHash('sha1').update(ACQUIRE_LUA).digest('hex')
const SETTLE_SHA = createHash('sha1').update(SETTLE_LUA).digest('hex')
const RENEW_SHA = createHash('sha1').update(RENEW_LUA).digest('hex')

interface PendingSettle { items: readonly SettleItem[], leaseId: string, resolve: () => void, reject: (err: unknown) => void }

const KIND = { window: 'w', period: 'p', lease: 'l' } as const

/** One settle item's fields in the settle script's argument (see lua/settle.ts): kind mark delta ms lease. */
function pushSettleFields (out: Array<string | number>, item: SettleItem, leaseId: string): void {
  const c = item.counter
  out.push(c.kind === 'period' ? PERIOD_KIND[c.period ?? 'day'] : KIND[c.kind], field(item.mark), item.delta, c.ms, field(leaseId))
}

const PERIOD = { hour: 'h', day: 'd', month: 'm' } as const
const PERIOD_KIND = { hour: 'p:h', day: 'p:d', month: 'p:m' } as const

/**
 * A mark or lease id as one field of a space-separated script argument: "-" stands for none. Marks are integers
 * and lease ids UUIDs; anything else (never seen) is refused here rather than misread by the script.
 */
function field (s: string): string {
  if (s === '') return '-'
  if (s === '-' || /\s/.test(s)) throw new Error(`limit store: "${s}" cannot be sent as one field`)
  return s
}

/**
 * The shared store: every decision is one EVALSHA (scripts registered with defineCommand, which falls back
 * to EVAL only on NOSCRIPT, i.e. when the script did not run). Never retried: a command that timed out may
 * still have run, and running it twice would count the request twice.
 *
 * On Redis Cluster all keys of one script must share a slot. A request's per-key counters share the key's
 * hash tag; a location quota is shared by all keys and carries its own tag, so a request under a quota is
 * checked with one script per slot, in parallel, and a slot that admitted is given back if another refused.
 */
export class RedisStore implements LimitStore {
  readonly name = 'redis'
  readonly #redis: RedisClient
  readonly #cluster: boolean
  #pending: PendingSettle[] = []
  /** the raw acquire command (standalone, Sentinel), once ioredis's Command class is at hand */
  #Raw: RawCommandClass | null = null
  readonly #sending = new Set<Promise<void>>()
  /** the connection's socket while corked: raw commands of one event-loop turn leave in one write */
  #corked: Redis['stream'] | null = null
  /** the raw commands corked this turn, whose time starts when the socket is uncorked */
  #toStart: RawCommand[] = []
  /** settled once raw commands are in place (until then, calls go through ioredis's script path) */
  readonly rawReady: Promise<void>
  /** RESP bulk strings of counter keys, and the acquire's fixed head per key count */
  readonly #keyBytes = new Map<string, Buffer>()
  readonly #acquireHeads: Buffer[] = []

  constructor (redis: RedisClient, cluster: boolean) {
    this.#redis = redis
    this.#cluster = cluster
    redis.defineCommand('geogateAcquire', { lua: ACQUIRE_LUA })
    redis.defineCommand('geogateSettle', { lua: SETTLE_LUA })
    redis.defineCommand('geogateRenew', { lua: RENEW_LUA })
    // ioredis is loaded (a client exists); imported here, not at the top, so serving without Redis never loads it
    this.rawReady = cluster ? Promise.resolve() : import('ioredis').then((m) => { this.#Raw = rawCommandClass(m.Command) }, () => {})
  }

  async acquire (counters: readonly CounterSpec[], leaseId: string): Promise<AcquireResult> {
    const groups = this.#groups(counters)
    if (groups.length === 1) return await this.#acquireOne(counters, leaseId)
    const results = await Promise.allSettled(groups.map(async (g) => await this.#acquireOne(g.map((i) => counters[i] as CounterSpec), leaseId)))
    const states: CounterState[] = new Array<CounterState>(counters.length)
    let refused = -1
    let retryAfterMs = 0
    let failure: unknown = null
    const giveBack: SettleItem[] = []
    results.forEach((r, gi) => {
      const idx = groups[gi] ?? []
      if (r.status === 'rejected') { failure ??= r.reason; return }
      idx.forEach((ci, k) => { states[ci] = r.value.states[k] as CounterState })
      if (r.value.allowed) {
        idx.forEach((ci, k) => {
          const c = counters[ci] as CounterSpec
          giveBack.push({ counter: c, mark: r.value.states[k]?.mark ?? '', delta: -c.cost })
        })
      } else if (refused < 0 || (idx[r.value.refused] ?? 0) < refused) {
        refused = idx[r.value.refused] ?? 0
        retryAfterMs = r.value.retryAfterMs
      }
    })
    if (failure === null && refused < 0) return { allowed: true, refused: -1, retryAfterMs: 0, states }
    // Another slot refused or failed: hand back what this request was charged where it was admitted.
    if (giveBack.length > 0) await this.settle(giveBack, leaseId).catch(() => {})
    if (failure !== null) throw failure
    return { allowed: false, refused, retryAfterMs, states }
  }

  /**
   * Settles are batched: every settle of one event-loop turn goes out as one EVALSHA (per slot on Cluster) at the
   * next turn, so a busy replica spends one round trip on many finished requests, and nobody's response waits for
   * it. The promise resolves once the batch ran (or rejects with its error): the effect is as exact as one call
   * per request, only grouped.
   */
  settle (items: readonly SettleItem[], leaseId: string): Promise<void> {
    if (items.length === 0) return SETTLED
    // not an async function: the caller gets this promise, not another wrapped around it (one fewer per request)
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ items, leaseId, resolve, reject })
      if (this.#pending.length === 1) setImmediate(this.#flush)
    })
  }

  readonly #flush = (): void => {
    const batch = this.#pending
    this.#pending = []
    const sent = this.#cluster ? this.#sendGrouped(batch) : this.#sendOne(batch)
    this.#sending.add(sent)
    void sent.then(() => { this.#sending.delete(sent) })
  }

  /** One connection, no slots: the whole batch is one call; every settle in it learns its outcome. */
  async #sendOne (batch: PendingSettle[]): Promise<void> {
    try {
      const keys: string[] = []
      const fields: Array<string | number> = []
      for (const b of batch) {
        for (const item of b.items) {
          keys.push(item.counter.key)
          pushSettleFields(fields, item, b.leaseId)
        }
      }
      await this.#settleCall(keys, fields.join(' '))
    } catch (err) {
      for (const b of batch) b.reject(err)
      return
    }
    for (const b of batch) b.resolve()
  }

  /** Cluster: one call per hash tag (slot); a settle fails if any of its slots' calls failed. */
  async #sendGrouped (batch: PendingSettle[]): Promise<void> {
    const all: Array<{ item: SettleItem, leaseId: string, from: number }> = []
    batch.forEach((b, from) => { for (const item of b.items) all.push({ item, leaseId: b.leaseId, from }) })
    const groups = this.#groups(all.map((x) => x.item.counter))
    const failed = new Map<number, unknown>()
    await Promise.all(groups.map(async (g) => {
      try {
        const keys: string[] = []
        const fields: Array<string | number> = []
        for (const i of g) {
          const { item, leaseId } = all[i] as (typeof all)[number]
          keys.push(item.counter.key)
          pushSettleFields(fields, item, leaseId)
        }
        await this.#settleCall(keys, fields.join(' '))
      } catch (err) {
        for (const i of g) failed.set((all[i] as (typeof all)[number]).from, err)
      }
    }))
    batch.forEach((b, i) => { if (failed.has(i)) b.reject(failed.get(i)); else b.resolve() })
  }

  async renew (counters: readonly CounterSpec[], leaseId: string): Promise<void> {
    const leases = counters.filter((c) => c.kind === 'lease')
    const groups = this.#groups(leases)
    await Promise.all(groups.map(async (g) => {
      const keys = g.map((i) => (leases[i] as CounterSpec).key)
      const ttl = Math.max(...g.map((i) => (leases[i] as CounterSpec).ms))
      // raw like a settle (its timeout judged as the acquire's is): a renew that timed out trips the breaker too
      if (this.#Raw !== null && await this.#send(respCommand(['evalsha', RENEW_SHA, String(keys.length), ...keys, leaseId, String(ttl)]), false) !== NO_RAW) return
      await this.#redis.geogateRenew(keys.length, ...keys, leaseId, ttl)
    }))
  }

  /**
   * Load the scripts on every master (at boot and after each reconnect), so the first decision after a
   * Redis restart is one EVALSHA rather than NOSCRIPT + EVAL. Best effort: EVAL covers a miss.
   */
  async preload (): Promise<void> {
    const nodes = isCluster(this.#redis) ? this.#redis.nodes('master') : [this.#redis]
    await Promise.all(nodes.flatMap((n) => [ACQUIRE_LUA, SETTLE_LUA, RENEW_LUA].map(async (lua) => await n.script('LOAD', lua))))
  }

  /** Settles queued or on the wire are sent and answered before the client is closed. */
  async close (): Promise<void> {
    while (this.#pending.length > 0 || this.#sending.size > 0) {
      if (this.#pending.length > 0) await new Promise((resolve) => setImmediate(resolve))
      await Promise.all(this.#sending)
    }
  }

  async #acquireOne (counters: readonly CounterSpec[], leaseId: string): Promise<AcquireResult> {
    // the specs as one argument (see lua/acquire.ts): kind limit cost ms period, per counter
    // joined once: concatenating field by field made a string per piece, about 2 KB per request with six counters
    const fields = new Array<string | number>(counters.length * 5)
    let j = 0
    for (const c of counters) {
      fields[j++] = KIND[c.kind]
      fields[j++] = c.limit
      fields[j++] = c.cost
      fields[j++] = c.ms
      fields[j++] = c.period === undefined ? '-' : PERIOD[c.period]
    }
    const specs = fields.join(' ')
    const out = await this.#acquireCall(counters, leaseId, specs)
    const n = counters.length
    const states = new Array<CounterState>(n)
    for (let i = 0; i < n; i++) {
      states[i] = { limit: (counters[i] as CounterSpec).limit, remaining: Number(out[3 + i * 3]), resetMs: Number(out[4 + i * 3]), mark: String(out[5 + i * 3]) }
    }
    return { allowed: Number(out[0]) === 1, refused: Number(out[1]), retryAfterMs: Number(out[2]), states }
  }

  /**
   * One EVALSHA of the acquire script: raw on a standalone or Sentinel connection; through defineCommand on Cluster
   * (it routes by key slot) and for a script Redis does not have (NOSCRIPT: it did not run, so the EVAL that
   * defineCommand then sends is no retry). Settles go the same way, so a settle sent before an acquire reaches
   * Redis before it (auto-pipelined commands wait for the next tick; raw ones enter the socket's buffer at once, in
   * order, corked or not).
   */
  async #acquireCall (counters: readonly CounterSpec[], leaseId: string, specs: string): Promise<Array<string | number>> {
    const out = this.#Raw === null ? NO_RAW : await this.#send(this.#acquireBytes(counters, leaseId, specs))
    if (out !== NO_RAW) return out as Array<string | number>
    return await this.#redis.geogateAcquire(counters.length, ...counters.map((c) => c.key), leaseId, specs)
  }

  /** The acquire's EVALSHA in RESP: the fixed head and the keys' bulk strings from what is kept, then lease and specs. */
  #acquireBytes (counters: readonly CounterSpec[], leaseId: string, specs: string): Buffer {
    const n = counters.length
    let head = this.#acquireHeads[n]
    if (head === undefined) {
      head = bulkOwn(`*${5 + n}\r\n$7\r\nevalsha\r\n$40\r\n${ACQUIRE_SHA}\r\n${bulk(String(n)).toString('latin1')}`)
      this.#acquireHeads[n] = head
    }
    const keys = new Array<Buffer>(n)
    let size = head.length
    for (let i = 0; i < n; i++) {
      const key = (counters[i] as CounterSpec).key
      let b = this.#keyBytes.get(key)
      if (b === undefined) {
        if (this.#keyBytes.size >= KEYS_KEPT) this.#keyBytes.clear()
        b = bulk(key)
        this.#keyBytes.set(key, b)
      }
      keys[i] = b
      size += b.length
    }
    const leaseLen = Buffer.byteLength(leaseId)
    const leaseHead = '$' + String(leaseLen) + '\r\n'
    const specsHead = '$' + String(specs.length) + '\r\n' // specs are ASCII: kinds, digits, spaces
    size += leaseHead.length + leaseLen + 2 + specsHead.length + specs.length + 2
    const buf = Buffer.allocUnsafe(size)
    let at = head.copy(buf, 0)
    for (const b of keys) at += b.copy(buf, at)
    at += buf.write(leaseHead, at, 'latin1')
    at += buf.write(leaseId, at, 'utf8')
    at += buf.write('\r\n', at, 'latin1')
    at += buf.write(specsHead, at, 'latin1')
    at += buf.write(specs, at, 'latin1')
    buf.write('\r\n', at, 'latin1')
    return buf
  }

  async #settleCall (keys: string[], items: string): Promise<void> {
    // not corked: a batch is one command, sent from the check phase, where a cork would hold it a whole turn
    if (this.#Raw !== null && await this.#send(respCommand(['evalsha', SETTLE_SHA, String(keys.length), ...keys, items]), false) !== NO_RAW) return
    await this.#redis.geogateSettle(keys.length, ...keys, items)
  }

  /** The command sent raw, its reply; NO_RAW when it must go through defineCommand instead (see #acquireCall). */
  async #send (bytes: Buffer, cork = true): Promise<unknown> {
    const Raw = this.#Raw as RawCommandClass
    const redis = this.#redis as Redis
    if (cork) this.#cork(redis)
    // corked by this turn's acquires or not, its bytes leave when the socket is uncorked: its time starts then
    const corked = this.#corked !== null
    const cmd = new Raw(bytes, corked)
    if (corked) this.#toStart.push(cmd)
    try {
      return await redis.sendCommand(cmd)
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return NO_RAW
      throw err
    } finally {
      cmd.stop()
    }
  }

  /**
   * Requests that arrive in one turn of the event loop (one poll of the sockets) each send an acquire: corked until
   * the turn's check phase, they reach Redis in one write rather than a system call each, in the order sent. Only
   * the socket's buffering is deferred; ioredis has already queued each command for its reply and its timeout.
   */
  #cork (redis: Redis): void {
    if (this.#corked !== null) return
    const stream = redis.stream as Redis['stream'] | null | undefined
    if (stream === null || stream === undefined || !stream.writable) return
    stream.cork()
    this.#corked = stream
    setImmediate(this.#uncork)
  }

  readonly #uncork = (): void => {
    const stream = this.#corked
    this.#corked = null
    stream?.uncork()
    // their bytes have left: their commandTimeout starts now (see rawCommandClass)
    const sent = this.#toStart
    this.#toStart = []
    for (const cmd of sent) cmd.start()
  }

  /** Indexes of the counters, grouped by hash tag on Cluster; one group elsewhere (no slot rule). */
  #groups (counters: readonly CounterSpec[]): number[][] {
    if (!this.#cluster) return counters.length === 0 ? [] : [counters.map((_c, i) => i)]
    const byTag = new Map<string, number[]>()
    counters.forEach((c, i) => {
      const g = byTag.get(c.tag)
      if (g === undefined) byTag.set(c.tag, [i])
      else g.push(i)
    })
    return [...byTag.values()]
  }
}
