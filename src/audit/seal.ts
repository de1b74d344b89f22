/**
 * Sealing: the writer's place in its hash chain. Records are queued as JSON bytes (built once, on the request
 * path) and given their seq, prev and hash here, in batches, when a group commit starts — so the chain order is
 * the order of the commit queue and the request path never hashes. Bytes, not strings: a record waits up to the
 * commit window (tens of milliseconds), long enough for V8 to copy a string into its old generation; a Buffer's
 * bytes live outside the JS heap.
 */
import { GENESIS, sealBytes } from './chain.js'
import { dayOf } from './segments.js'

/** A record accepted by the writer and not yet sealed. */
export interface Queued {
  /** the record's JSON (without chain fields), UTF-8 */
  json: Buffer
  ts: string
  /** requestId whose in-flight journal entry this record makes obsolete */
  closes: string | null
  /** Date.now() when accepted (the lag metric) */
  at: number
}

/** A sealed record: its line as it goes to disk, `json` without its last byte (the closing brace), then `tail`. */
export interface Item {
  json: Buffer
  tail: string
  bytes: number
  seq: number
  hash: string
  day: string
  closes: string | null
  at: number
}

export class Sealer {
  #seq = 0
  #prev = GENESIS

  constructor (readonly writer: string) {}

  get seq (): number { return this.#seq }

  /** Continue a chain whose last record is (seq, hash). */
  resume (seq: number, hash: string): void {
    this.#seq = seq
    this.#prev = hash
  }

  seal (q: Queued): Item {
    const seq = this.#seq + 1
    const { tail, hash } = sealBytes(q.json, this.writer, seq, this.#prev)
    this.#seq = seq
    this.#prev = hash
    // the tail is ASCII: the writer id is [A-Za-z0-9.-], the rest digits and hex
    return { json: q.json, tail, bytes: q.json.length - 1 + tail.length, seq, hash, day: dayOf(q.ts), closes: q.closes, at: q.at }
  }
}
