import type { Readable } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import { BodyTooLargeError } from '../core/errors.js'

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
 * What the backend is sent for a JSON body: the caller's own text (`text`, RequestContext.jsonText) when the rewrite
 * would change nothing (no other model name upstream, no usage chunk to ask for on a stream), so a large prompt is
 * not serialised again; else the rewrite.
 */
export function jsonBodyFor (body: Readonly<Record<string, unknown>>, text: string | null, rw: JsonRewrite): string {
  if (text !== null && !renames(body, rw) && !asksUsage(body)) return text
  return rewriteJson(body, rw)
}

/** The backend knows the model by another name. */
function renames (body: Readonly<Record<string, unknown>>, rw: JsonRewrite): rw is { upstreamModel: string } {
  return rw.upstreamModel !== undefined && typeof body.model === 'string' && body.model !== rw.upstreamModel
}

/** A stream whose usage chunk must be asked for (the caller did not ask for it itself). */
function asksUsage (body: Readonly<Record<string, unknown>>): boolean {
  return body.stream === true && !wantsUsageChunk(body)
}

/**
 * The JSON body as the backend gets it: the model renamed, and `stream_options.include_usage` asked for on
 * streams, so streamed tokens are counted. A tier's output clamp is already in the body: the
 * policy stage writes it per endpoint (applyOutputClamp in endpoint.ts).
 */
export function rewriteJson (body: Readonly<Record<string, unknown>>, rw: JsonRewrite): string {
  const out: Record<string, unknown> = { ...body }
  if (renames(body, rw)) out.model = rw.upstreamModel
  if (asksUsage(body)) {
    const so = out.stream_options
    out.stream_options = { ...(so !== null && typeof so === 'object' ? so : {}), include_usage: true }
  }
  return JSON.stringify(out)
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
