import { BadRequestError } from './errors.js'

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

/** A Fastify string body parser (structural, so core/ needs no Fastify import). */
type JsonParser<R> = (request: R, body: string, done: (err: Error | null, body?: unknown) => void) => void

/**
 * The JSON body parser of both planes: Fastify's own (prototype-poisoning keys refused), behind a depth check, so a
 * body nested deeper than MAX_JSON_DEPTH is a 400 before any stage runs.
 */
export function boundedJsonParser<R> (parse: JsonParser<R>): JsonParser<R> {
  return function parseJson (request, body, done): void {
    if (jsonDepthOver(body, MAX_JSON_DEPTH)) {
      done(new BadRequestError(`The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`))
      return
    }
    parse(request, body, done)
  }
}
