import { Transform, type TransformCallback } from 'node:stream'

/**
 * The answer names the model the caller asked for, not the backend's name for it (`upstreamModel`): every
 * `"model":"<upstream>"` (also with a space after the colon) in the body becomes `"model":"<caller's>"`, in JSON
 * answers and in every SSE event. Bytes pass through as they come: only a chunk's last few bytes are held, and only
 * when they could be the start of the name split across two chunks, so an SSE event is never delayed.
 */
export class ModelRename extends Transform {
  readonly #needles: Buffer[]
  readonly #replacements: Buffer[]
  readonly #first: number
  #held: Buffer = Buffer.alloc(0)

  constructor (upstream: string, caller: string) {
    super()
    const from = JSON.stringify(upstream)
    const to = Buffer.from(JSON.stringify(caller))
    this.#needles = [Buffer.from(`"model":${from}`), Buffer.from(`"model": ${from}`)]
    this.#replacements = [Buffer.concat([Buffer.from('"model":'), to]), Buffer.concat([Buffer.from('"model": '), to])]
    this.#first = 0x22 // every needle starts with a quote
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const data = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk])
    const { parts, from } = this.#matches(data)
    // after the last whole match, the tail may be the start of a name that the next chunk completes
    const keep = this.#partialTail(data.subarray(from))
    const end = data.length - keep
    this.#held = keep === 0 ? Buffer.alloc(0) : Buffer.from(data.subarray(end))
    if (parts.length === 0) { cb(null, end === data.length ? data : data.subarray(0, end)); return }
    parts.push(data.subarray(from, end))
    cb(null, Buffer.concat(parts))
  }

  override _flush (cb: TransformCallback): void {
    const rest = this.#held
    this.#held = Buffer.alloc(0)
    cb(null, rest.length === 0 ? undefined : rest)
  }

  /** The body up to the end of the last whole match, with the names replaced (no parts: no match). */
  #matches (b: Buffer): { parts: Buffer[], from: number } {
    const parts: Buffer[] = []
    let from = 0
    let i = b.indexOf(this.#first, from)
    while (i !== -1) {
      let matched = -1
      for (let n = 0; n < this.#needles.length; n++) {
        const needle = this.#needles[n] as Buffer
        if (b.length - i >= needle.length && b.compare(needle, 0, needle.length, i, i + needle.length) === 0) { matched = n; break }
      }
      if (matched >= 0) {
        parts.push(b.subarray(from, i), this.#replacements[matched] as Buffer)
        from = i + (this.#needles[matched] as Buffer).length
        i = b.indexOf(this.#first, from)
      } else {
        i = b.indexOf(this.#first, i + 1)
      }
    }
    return { parts, from }
  }

  /** How many bytes at the end of `b` are a proper prefix of a needle (a name that may continue in the next chunk). */
  #partialTail (b: Buffer): number {
    let longest = 0
    for (const needle of this.#needles) {
      const max = Math.min(needle.length - 1, b.length)
      for (let k = max; k > longest; k--) {
        if (b.compare(needle, 0, k, b.length - k, b.length) === 0) { longest = k; break }
      }
    }
    return longest
  }
}
