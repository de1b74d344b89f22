import { BadRequestError } from './errors.js'

/**
 * Deepest nesting of arrays and objects a JSON body may have. OpenAI request bodies nest a handful of levels (a
 * tool's JSON schema a few more); 64 leaves room for any of them. Deeper bodies are refused before they are parsed:
 * every later step that walks a body (the prompt estimate, the rewrite, the backend's own parser) recurses, and
 * 100,000 levels overflowed the stack into a 500 audited as a backend error.
 */
export const MAX_JSON_DEPTH = 64

/** What one pass over a JSON text found (scanJson). */
export interface JsonScan {
  /** arrays and objects nest deeper than the bound: stopped there, the rest unread */
  tooDeep: boolean
  /**
   * every object's keys are distinct as written, and none holds an escape: what JSON.parse made of the text is what
   * any JSON parser makes of it, so the text itself can be forwarded in place of a re-serialisation (a key given
   * twice is read as its last value by JSON.parse and as its first by some parsers; `"mod\u0065l"` is `model`)
   */
  plainKeys: boolean
}

const QUOTE = 34
const BACKSLASH = 92

/**
 * One pass over a JSON text: its nesting depth (brackets outside strings), stopping as soon as it passes `max`, and
 * whether its object keys are plain (JsonScan.plainKeys). A string's contents are skipped with indexOf, so the cost
 * is in the structure, not in the prompt's text. Meant for text that JSON.parse then accepts: on malformed text the
 * answer is only as good as the text.
 */
export function scanJson (text: string, max: number): JsonScan {
  let depth = 0
  let plainKeys = true
  // per open container: the keys seen so far (an object's) or null (an array's); kept only while keys are plain
  const keys: Array<Keys | null> = []
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      // the closing quote: the next one not escaped (an odd run of backslashes before a quote escapes it)
      let end = text.indexOf('"', i + 1)
      while (end !== -1) {
        let b = end - 1
        while (text.charCodeAt(b) === BACKSLASH) b--
        if ((end - 1 - b) % 2 === 0) break
        end = text.indexOf('"', end + 1)
      }
      if (end === -1) return { tooDeep: false, plainKeys: false }
      if (plainKeys) {
        const top = keys[keys.length - 1]
        if (top !== undefined && top !== null && isKey(text, end + 1)) {
          const key = text.slice(i + 1, end)
          if (key.includes('\\') || !top.add(key)) plainKeys = false
        }
      }
      i = end
    } else if (c === 123 || c === 91) { // { [
      if (++depth > max) return { tooDeep: true, plainKeys: false }
      if (plainKeys) keys.push(c === 123 ? new Keys() : null)
    } else if (c === 125 || c === 93) { // } ]
      depth--
      if (plainKeys) keys.pop()
    }
  }
  return { tooDeep: false, plainKeys }
}

/** One object's keys: a short list searched in turn (most objects have a handful), a Set once it grows. */
class Keys {
  #list: string[] = []
  #set: Set<string> | null = null

  /** false when the key is there already */
  add (key: string): boolean {
    const set = this.#set
    if (set !== null) {
      if (set.has(key)) return false
      set.add(key)
      return true
    }
    const list = this.#list
    if (list.includes(key)) return false
    list.push(key)
    if (list.length > 16) this.#set = new Set(list)
    return true
  }
}

/** A string ending before `at` is an object key when a colon follows it (after any whitespace). */
function isKey (text: string, at: number): boolean {
  for (let j = at; j < text.length; j++) {
    const c = text.charCodeAt(j)
    if (c === 58) return true // :
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) return false
  }
  return false
}

/** A Fastify string body parser (structural, so core/ needs no Fastify import). */
type JsonParser<R> = (request: R, body: string, done: (err: Error | null, body?: unknown) => void) => void

/**
 * The JSON body parser of both planes: Fastify's own (prototype-poisoning keys refused), behind a depth check, so a
 * body nested deeper than MAX_JSON_DEPTH is a 400 before any stage runs. `keepText` is handed the text of a body
 * whose keys are plain (JsonScan.plainKeys), before it is parsed.
 */
export function boundedJsonParser<R> (parse: JsonParser<R>, keepText?: (request: R, text: string) => void): JsonParser<R> {
  return function parseJson (request, body, done): void {
    const scan = scanJson(body, MAX_JSON_DEPTH)
    if (scan.tooDeep) {
      done(new BadRequestError(`The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`))
      return
    }
    if (keepText !== undefined && scan.plainKeys) keepText(request, body)
    parse(request, body, done)
  }
}
