import { Transform, type Readable, type TransformCallback } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import { BodyTooLargeError } from '../errors.js'
import { ModelFieldScanner, multipartBoundary } from './forward-multipart.js'

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
 * A non-JSON body (multipart audio and image uploads, anything else) on its way to the backend, bytes
 * untouched. For multipart/form-data, `model` is the form's model field, found by scanning the upload as it
 * arrives (ModelFieldScanner), so the request is decided and routed like a JSON one; the bytes read up to it
 * are held (at most server.bodyLimit) and replayed first. `model` is the only own property on purpose: the
 * endpoint stage reads the body's fields from it as from a parsed JSON object.
 */
export class RawBody {
  readonly model: string | null
  readonly #head: Buffer[]
  readonly #rest: Readable
  readonly #ended: boolean

  constructor (model: string | null, head: Buffer[], rest: Readable, ended: boolean) {
    this.model = model
    this.#head = head
    this.#rest = rest
    this.#ended = ended
  }

  /** The whole body as the caller sent it, failing with 413 past the limit (chunked uploads declare no length). */
  toStream (limit: number): Readable {
    const out = new BodyLimit(limit)
    for (const b of this.#head) out.write(b)
    if (this.#ended) out.end()
    else this.#rest.pipe(out)
    return out
  }
}

async function scanMultipart (payload: Readable, boundary: string, limit: number): Promise<RawBody> {
  const scanner = new ModelFieldScanner(boundary)
  const head: Buffer[] = []
  let size = 0
  return await new Promise<RawBody>((resolve, reject) => {
    const cleanup = (): void => {
      payload.off('data', onData)
      payload.off('end', onEnd)
      payload.off('error', onError)
      payload.off('close', onClose)
    }
    const onData = (c: Buffer): void => {
      head.push(c)
      size += c.length
      if (size > limit) { cleanup(); payload.pause(); reject(new BodyTooLargeError(limit)); return }
      scanner.push(c)
      if (scanner.done) { cleanup(); payload.pause(); resolve(new RawBody(scanner.model, head, payload, false)) }
    }
    const onEnd = (): void => { cleanup(); resolve(new RawBody(scanner.model, head, payload, true)) }
    const onError = (err: Error): void => { cleanup(); reject(err) }
    const onClose = (): void => { cleanup(); reject(new Error('the client closed the upload')) }
    payload.on('data', onData)
    payload.once('end', onEnd)
    payload.once('error', onError)
    payload.once('close', onClose)
  })
}

/**
 * Content-type parser for every non-JSON body. Fastify's bodyLimit applies only to bodies it parses, so it is
 * enforced here: up front from Content-Length, while scanning, and by RawBody.toStream() while forwarding.
 */
export function rawBodyParser (limit: number) {
  return async function parseRaw (request: FastifyRequest, payload: Readable): Promise<RawBody> {
    const declared = Number(request.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) throw new BodyTooLargeError(limit)
    const boundary = multipartBoundary(request.headers['content-type'])
    if (boundary !== null) return await scanMultipart(payload, boundary, limit)
    // Other bodies are left unread here: a refused request's body is then discarded by Node.
    return new RawBody(null, [], payload, false)
  }
}
