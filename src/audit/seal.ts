/**
 * Sealing: the writer's place in its hash chain. Records are queued as JSON text (built once, on the request
 * path) and given their seq, prev and hash here, in batches, when a group commit starts — so the chain order is
 * the order of the commit queue and the request path never hashes.
 */
import { GENESIS, sealJson } from './chain.js'
import { dayOf } from './segments.js'

/** A record accepted by the writer and not yet sealed. */
export interface Queued {
  json: string
  ts: string
  /** requestId whose in-flight journal entry this record makes obsolete */
  closes: string | null
  /** Date.now() when accepted (the lag metric) */
  at: number
}

/** A sealed record: its line as it goes to disk. */
export interface Item {
  line: string
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
    const { line, hash } = sealJson(q.json, this.writer, seq, this.#prev)
    this.#seq = seq
    this.#prev = hash
    return { line, bytes: Buffer.byteLength(line), seq, hash, day: dayOf(q.ts), closes: q.closes, at: q.at }
  }
}
