import { Transform, type TransformCallback } from 'node:stream'
import type { Usage } from '../core/types.js'

const LF = 0x0a
const CR = 0x0d
/** A non-null usage object: the one thing worth a JSON.parse on the hot path. */
const USAGE_OBJECT = /"usage"\s*:\s*\{/
const USAGE_TAIL = /"usage"\s*:\s*(\{[^{}]*\})/g
/** Longest SSE line (or held event) looked at; longer ones pass through unparsed. */
const MAX_LINE = 1024 * 1024
/** Non-streamed JSON bodies up to this size are parsed whole; beyond it only the tail is searched. */
const MAX_JSON = 1024 * 1024
const JSON_TAIL = 16 * 1024

function tokenCount (v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null
}

/** OpenAI `usage` → tokens in/out; embeddings report only prompt tokens. */
export function readUsage (u: unknown): Usage | null {
  if (u === null || typeof u !== 'object') return null
  const o = u as Record<string, unknown>
  const tokensIn = tokenCount(o.prompt_tokens) ?? tokenCount(o.input_tokens)
  if (tokensIn === null) return null
  const tokensOut = tokenCount(o.completion_tokens) ?? tokenCount(o.output_tokens) ?? 0
  return { tokensIn, tokensOut }
}

export interface SseTapOptions {
  /**
   * Drop the usage-only chunk (`choices: []`, `usage: {…}`) the gateway asked for on the caller's behalf:
   * OpenAI SDK code written as `chunk.choices[0].delta` breaks on a chunk it did not ask for.
   */
  dropUsageChunk: boolean
  /** prompt-size estimate, used until (unless) the backend reports usage */
  estimatedIn: number
  onUsage: (usage: Usage) => void
  onFirstByte: () => void
  /** the first `data:` payload (a Responses stream opens with `response.created`, which carries the id) */
  onFirstData?: ((payload: string) => void) | undefined
}

/**
 * The usage of a whole JSON answer (and the parsed body, for the caller that reads a created object's id), or
 * nulls when the bytes are not JSON.
 */
export function jsonAnswerUsage (body: Buffer): { usage: Usage | null, parsed: unknown } {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { usage?: unknown } | null
    return { usage: readUsage(parsed?.usage), parsed }
  } catch {
    return { usage: null, parsed: null }
  }
}

/**
 * Server-sent events pass through as they come, and their `data:` lines are read on the side for the
 * final usage. Without dropping, every chunk is pushed the moment it arrives. With dropping, whole events
 * are pushed as soon as their blank line arrives (a partial event is of no use to an SSE client anyway).
 * Until the backend reports usage, output tokens are estimated as one per content chunk, so a caller who
 * hangs up before the usage chunk is still charged for what it received.
 */
export class SseUsageTap extends Transform {
  readonly #opts: SseTapOptions
  #held: Buffer = Buffer.alloc(0)
  /** bytes of #held already split into lines */
  #scanned = 0
  /** filter mode: start of the current event within #held */
  #dropEvent = false
  #skipLine = false
  #chunks = 0
  #exact = false
  #first = true
  #firstData = true

  constructor (opts: SseTapOptions) {
    super()
    this.#opts = opts
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#first) { this.#first = false; this.#opts.onFirstByte() }
    if (!this.#opts.dropUsageChunk) {
      this.push(chunk)
    }
    const data = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk])
    let lineStart = this.#scanned
    let eventStart = 0
    let nl = data.indexOf(LF, lineStart)
    while (nl !== -1) {
      const end = nl > lineStart && data[nl - 1] === CR ? nl - 1 : nl
      if (end === lineStart) {
        // blank line: the event is complete
        if (this.#opts.dropUsageChunk) {
          if (!this.#dropEvent) this.#emit(data.subarray(eventStart, nl + 1))
          eventStart = nl + 1
        }
        this.#dropEvent = false
      } else if (this.#skipLine) {
        this.#skipLine = false
      } else {
        this.#line(data, lineStart, end)
      }
      lineStart = nl + 1
      nl = data.indexOf(LF, lineStart)
    }
    if (this.#opts.dropUsageChunk) {
      this.#held = data.subarray(eventStart)
      this.#scanned = lineStart - eventStart
      if (this.#held.length > MAX_LINE) {
        // an event this large is not a usage chunk: let it through rather than hold it
        this.#emit(this.#held)
        this.#held = Buffer.alloc(0)
        this.#scanned = 0
        this.#skipLine = lineStart < data.length
      }
    } else {
      this.#held = data.subarray(lineStart)
      this.#scanned = 0
      if (this.#held.length > MAX_LINE) { this.#held = Buffer.alloc(0); this.#skipLine = true }
    }
    cb()
  }

  override _flush (cb: TransformCallback): void {
    if (this.#held.length > this.#scanned && !this.#skipLine) this.#line(this.#held, this.#scanned, this.#held.length)
    if (this.#opts.dropUsageChunk && this.#held.length > 0 && !this.#dropEvent) this.#emit(this.#held)
    this.#held = Buffer.alloc(0)
    cb()
  }

  #emit (b: Buffer): void {
    this.push(b)
  }

  #line (data: Buffer, start: number, end: number): void {
    // `data:` then one optional space (WHATWG HTML, server-sent events)
    if (end - start < 5 || data[start] !== 0x64 || data.toString('latin1', start, start + 5) !== 'data:') return
    const payload = data.toString('utf8', data[start + 5] === 0x20 ? start + 6 : start + 5, end)
    if (payload === '[DONE]') return
    if (this.#firstData) {
      this.#firstData = false
      this.#opts.onFirstData?.(payload)
    }
    if (USAGE_OBJECT.test(payload)) {
      let parsed: unknown
      try { parsed = JSON.parse(payload) } catch { return }
      const o = parsed as { usage?: unknown, choices?: unknown }
      const usage = readUsage(o.usage)
      if (usage !== null) {
        this.#exact = true
        this.#opts.onUsage(usage)
        if (Array.isArray(o.choices) && o.choices.length === 0) { this.#dropEvent = true; return }
      }
    }
    this.#chunks++
    if (!this.#exact) this.#opts.onUsage({ tokensIn: this.#opts.estimatedIn, tokensOut: this.#chunks, estimated: true })
  }
}

/**
 * A non-streamed JSON answer passes through untouched while a bounded copy is kept for its `usage`
 * (whole bodies up to 1 MiB; beyond, the last 16 KiB, where OpenAI-compatible servers put `usage`).
 */
export class JsonUsageTap extends Transform {
  readonly #onUsage: (usage: Usage) => void
  readonly #onFirstByte: () => void
  readonly #onBody: ((body: unknown) => void) | undefined
  #parts: Buffer[] = []
  #size = 0
  #tail: Buffer = Buffer.alloc(0)
  #started = false

  /** onBody: the parsed answer (bodies up to 1 MiB), e.g. to read the id of a created response */
  constructor (onUsage: (usage: Usage) => void, onFirstByte: () => void, onBody?: (body: unknown) => void) {
    super()
    this.#onUsage = onUsage
    this.#onFirstByte = onFirstByte
    this.#onBody = onBody
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.#started) { this.#started = true; this.#onFirstByte() }
    this.#size += chunk.length
    if (this.#size <= MAX_JSON) {
      this.#parts.push(chunk)
    } else {
      const joined = this.#parts.length > 0 ? Buffer.concat([...this.#parts, chunk]) : Buffer.concat([this.#tail, chunk])
      this.#parts = []
      this.#tail = joined.subarray(Math.max(0, joined.length - JSON_TAIL))
    }
    cb(null, chunk)
  }

  override _flush (cb: TransformCallback): void {
    let usage: Usage | null = null
    if (this.#size <= MAX_JSON) {
      const answer = jsonAnswerUsage(Buffer.concat(this.#parts))
      usage = answer.usage
      if (answer.parsed !== null) this.#onBody?.(answer.parsed)
    } else {
      const text = this.#tail.toString('utf8')
      let last: string | undefined
      for (const m of text.matchAll(USAGE_TAIL)) last = m[1]
      if (last !== undefined) {
        try { usage = readUsage(JSON.parse(last)) } catch { /* cut mid-object */ }
      }
    }
    this.#parts = []
    if (usage !== null) this.#onUsage(usage)
    cb()
  }
}
