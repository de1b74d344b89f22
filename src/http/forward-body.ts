import type { Readable } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import { BadRequestError, BodyTooLargeError } from '../core/errors.js'

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
 * streams, so streamed tokens are counted. A tier's output clamp is already in the body: the
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

/**
 * Deepest nesting of arrays and objects a JSON body may have. OpenAI request bodies nest a handful of levels (a
 * tool's JSON schema a few more); 64 leaves room for any of them. Deeper bodies are refused before they are parsed:
 * every later step that walks a body (the prompt estimate, the rewrite, the backend's own parser) recurses, and
 * 100,000 levels overflowed the stack into a 500 audited as a backend error.
 */
export const MAX_JSON_DEPTH = 64

/** Nesting depth of a JSON text (brackets outside strings), stopping as soon as it passes `max`. */
export function jsonDepthOver (text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92) i++ // backslash: skip the escaped character
      else if (c === 34) inString = false
    } else if (c === 34) {
      inString = true
    } else if (c === 123 || c === 91) { // { [
      if (++depth > max) return true
    } else if (c === 125 || c === 93) { // } ]
      depth--
    }
  }
  return false
}

type JsonParser = (request: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void) => void

/**
 * The JSON body parser: Fastify's own (prototype-poisoning keys refused), behind a depth check, so a body nested
 * deeper than MAX_JSON_DEPTH is a 400 before any stage runs.
 */
export function boundedJsonParser (parse: JsonParser): JsonParser {
  return function parseJson (request, body, done): void {
    if (jsonDepthOver(body, MAX_JSON_DEPTH)) {
      done(new BadRequestError(`The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`))
      return
    }
    parse(request, body, done)
  }
}

/**
 * Content-type parser for every non-JSON body: the raw stream. Multipart uploads are read from it (bounded)
 * by the endpoint stage (multipart.ts) and forwarded as the same bytes; any other stream is refused there.
 * A declared Content-Length over the limit is refused here, before a byte is read.
 */
export function rawBodyParser (limit: number) {
  return function parseRaw (request: FastifyRequest, payload: Readable, done: (err: Error | null, body?: unknown) => void): void {
    const declared = Number(request.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      done(new BodyTooLargeError(limit))
      return
    }
    // Left unread here: a refused request's body is then discarded by Node.
    done(null, payload)
  }
}
