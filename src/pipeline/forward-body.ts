import { Transform, type Readable, type TransformCallback } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import { BodyTooLargeError } from '../errors.js'

export interface JsonRewrite {
  /** model name the backend knows it by */
  upstreamModel?: string | undefined
}

/** The caller's own stream_options.include_usage: does it want the usage chunk it would get from OpenAI? */
export function wantsUsageChunk (body: Record<string, unknown>): boolean {
  const so = body.stream_options
  return so !== null && typeof so === 'object' && (so as Record<string, unknown>).include_usage === true
}

/**
 * The JSON body as the backend gets it: the model renamed, and `stream_options.include_usage` asked for on
 * streams, so streamed tokens are counted (SPEC §Forward). A tier's output clamp is already in the body: the
 * policy stage writes it per endpoint (applyOutputClamp in endpoint.ts).
 */
export function rewriteJson (body: Readonly<Record<string, unknown>>, rw: JsonRewrite): string {
  const out: Record<string, unknown> = { ...body }
  if (rw.upstreamModel !== undefined && typeof out.model === 'string') out.model = rw.upstreamModel
  if (out.stream === true) {
    const so = out.stream_options
    out.stream_options = { ...(so !== null && typeof so === 'object' ? so : {}), include_usage: true }
  }
  return JSON.stringify(out)
}

/** Counts a streamed body and fails it once it passes the limit (chunked uploads declare no length). */
class BodyLimit extends Transform {
  readonly #limit: number
  #seen = 0
  constructor (limit: number) { super(); this.#limit = limit }
  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length
    if (this.#seen > this.#limit) { cb(new BodyTooLargeError(this.#limit)); return }
    cb(null, chunk)
  }
}

/**
 * Content-type parser for every non-JSON body (multipart audio and image uploads): the raw stream, handed
 * to the backend untouched. Fastify's bodyLimit applies only to bodies it parses, so it is enforced here
 * from Content-Length, and by limitBody() while streaming chunked uploads.
 */
export function rawBodyParser (limit: number) {
  return function parseRaw (request: FastifyRequest, payload: Readable, done: (err: Error | null, body?: unknown) => void): void {
    const declared = Number(request.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      done(new BodyTooLargeError(limit))
      return
    }
    // Left unread here: a refused request's body is then discarded by Node, not piped nowhere.
    done(null, payload)
  }
}

/** The raw body as sent upstream, failing with 413 past the limit. */
export function limitBody (body: Readable, limit: number): Readable {
  return body.pipe(new BodyLimit(limit))
}

export function isStream (body: unknown): body is Readable {
  return body !== null && typeof body === 'object' && typeof (body as Readable).pipe === 'function'
}
