/*
 * What the request asks for, read from its path and body before any decision.
 *
 * The decision is made on exactly the path that is forwarded, or the request is refused: proxies that matched a
 * decoded or normalised path while forwarding the raw one let requests past route policy (Envoy CVE-2019-9901 `/..`,
 * CVE-2021-29492 `%2F`; @fastify/reply-from `%2E%2E`). So nothing here decodes or normalises:
 *   400 invalid_request — the path is not in canonical form, i.e. some server could read it as another path:
 *       empty segments (`//`, trailing `/`), dot segments, any percent-encoding, backslash, `;`, non-ASCII, a query
 *       with characters RFC 3986 does not allow, anything that is not origin-form.
 *   404 not_found — a canonical path that is not one of ours (`/V1/chat/completions`, `/v1/files`, wrong method):
 *       matching is exact and case-sensitive, the way the backends match.
 */
import type { Capability } from '../config/schema/index.js'
import type { Endpoint, RequestShape } from '../core/types.js'
import { BadRequestError, NotFoundError } from '../core/errors.js'
import { FormFields } from '../core/form-fields.js'
import { jsonByteLength } from '../core/json-length.js'

interface EndpointSpec {
  endpoint: Endpoint
  /** the capability this endpoint is (null: none, e.g. listing models) */
  capability: Capability | null
  /** a POST body must name its model */
  needsModel: boolean
  /** body fields bounding the output, the first one is written when the gateway clamps */
  outputFields: readonly string[]
  /** takes multipart/form-data uploads (audio, image edits) */
  multipart?: boolean
  /** body fields asking for several outputs in one request (n, best_of): they multiply the output */
  choiceFields?: readonly string[]
  /** names a stored object, not a model: routed to the backend that created it (forward-routes.ts) */
  byObject?: boolean
  /** the answer creates such an object: its id is remembered with the backend that answered */
  createsObject?: boolean
}

const CHAT: EndpointSpec = { endpoint: 'chat.completions', capability: 'chat', needsModel: true, outputFields: ['max_tokens', 'max_completion_tokens'], choiceFields: ['n'] }
const FT: EndpointSpec = { endpoint: 'fine_tuning.jobs', capability: 'fine-tuning', needsModel: false, outputFields: [], byObject: true }
const RESP: EndpointSpec = { endpoint: 'responses', capability: 'chat', needsModel: false, outputFields: [], byObject: true }

/** Exact `METHOD path` → endpoint. `{id}` stands for one identifier segment. */
const ROUTES: ReadonlyMap<string, EndpointSpec> = new Map([
  ['POST /v1/chat/completions', CHAT],
  ['POST /v1/completions', { endpoint: 'completions', capability: 'completions', needsModel: true, outputFields: ['max_tokens'], choiceFields: ['n', 'best_of'] }],
  ['POST /v1/embeddings', { endpoint: 'embeddings', capability: 'embeddings', needsModel: true, outputFields: [] }],
  ['POST /v1/images/generations', { endpoint: 'images.generations', capability: 'images', needsModel: true, outputFields: [], choiceFields: ['n'] }],
  ['POST /v1/images/edits', { endpoint: 'images.edits', capability: 'images', needsModel: true, outputFields: [], multipart: true, choiceFields: ['n'] }],
  ['POST /v1/images/variations', { endpoint: 'images.variations', capability: 'images', needsModel: true, outputFields: [], multipart: true, choiceFields: ['n'] }],
  ['POST /v1/audio/transcriptions', { endpoint: 'audio.transcriptions', capability: 'audio', needsModel: true, outputFields: [], multipart: true }],
  ['POST /v1/audio/translations', { endpoint: 'audio.translations', capability: 'audio', needsModel: true, outputFields: [], multipart: true }],
  ['POST /v1/audio/speech', { endpoint: 'audio.speech', capability: 'audio', needsModel: true, outputFields: [] }],
  ['POST /v1/responses', { endpoint: 'responses', capability: 'chat', needsModel: true, outputFields: ['max_output_tokens'], createsObject: true }],
  ['GET /v1/responses/{id}', RESP],
  ['DELETE /v1/responses/{id}', RESP],
  ['POST /v1/responses/{id}/cancel', RESP],
  ['GET /v1/responses/{id}/input_items', RESP],
  ['POST /v1/fine_tuning/jobs', { ...FT, needsModel: true, byObject: false, createsObject: true }],
  ['GET /v1/fine_tuning/jobs', FT],
  ['GET /v1/fine_tuning/jobs/{id}', FT],
  ['POST /v1/fine_tuning/jobs/{id}/cancel', FT],
  ['GET /v1/fine_tuning/jobs/{id}/events', FT],
  ['GET /v1/fine_tuning/jobs/{id}/checkpoints', FT],
  ['GET /v1/models', { endpoint: 'models', capability: null, needsModel: false, outputFields: [] }]
])

/** The capability an endpoint is (null: none, e.g. listing models, `other`). */
export function endpointCapability (endpoint: Endpoint): Capability | null {
  for (const spec of ROUTES.values()) if (spec.endpoint === endpoint) return spec.capability
  return null
}

/**
 * The path of each named endpoint (its route without an `{id}`): what explain and policy tests send when they
 * are given an endpoint by name.
 */
export const ENDPOINT_PATHS: ReadonlyMap<Endpoint, string> = (() => {
  const paths = new Map<Endpoint, string>()
  for (const [route, spec] of ROUTES) {
    if (!route.includes('{id}') && !paths.has(spec.endpoint)) paths.set(spec.endpoint, route.slice(route.indexOf(' ') + 1))
  }
  return paths
})()

/** Endpoints whose output is counted in tokens: only these get max-token clamps. */
/** endpoint -> the body fields bounding its output (the first route that names any), built once rather than per clamp */
const OUTPUT_FIELDS: ReadonlyMap<Endpoint, readonly string[]> = (() => {
  const out = new Map<Endpoint, readonly string[]>()
  for (const s of ROUTES.values()) if (s.outputFields.length > 0 && !out.has(s.endpoint)) out.set(s.endpoint, s.outputFields)
  return out
})()

export const TOKEN_OUTPUT: ReadonlySet<Endpoint> = new Set<Endpoint>(['chat.completions', 'completions', 'responses'])

const PATH_CHARS = /^[A-Za-z0-9/_.~-]*$/
/** an object id in a path (`resp_…`, `ftjob-…`); also what an answer's `id` must look like to be remembered */
export const ID_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,255}$/
// RFC 3986 query characters (pchar / "/" / "?"); a percent sign must start a valid escape
const QUERY = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$/
const MODEL_ID_PREFIX = '/v1/models/'

function invalid (why: string): never {
  throw new BadRequestError(`Request path is not in canonical form: ${why}`)
}

/** The route template of a canonical path: identifier segments after a known collection become `{id}`. */
function template (segments: string[]): { key: string, id: string | null } {
  const out: string[] = []
  let id: string | null = null
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i] as string
    const prev = out.join('/')
    if ((prev === '/v1/responses' || prev === '/v1/fine_tuning/jobs') && ID_SEGMENT.test(s)) { out.push('{id}'); id = s } else out.push(s)
  }
  return { key: out.join('/'), id }
}

/** Split and check the path; returns the path (for matching) and the query (kept verbatim). */
export function canonicalPath (url: string): { path: string, query: string } {
  if (!url.startsWith('/')) invalid('the request target must be an absolute path')
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  const query = q === -1 ? '' : url.slice(q)
  if (path.includes('%')) invalid('percent-encoding is not accepted in the path')
  if (path.includes('\\')) invalid('backslash in the path')
  if (!PATH_CHARS.test(path)) invalid('unexpected characters in the path')
  const segments = path.split('/')
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string
    if (s === '') invalid(i === segments.length - 1 ? 'trailing slash' : 'empty path segment (//)')
    if (s === '.' || s === '..') invalid('dot segment')
  }
  if (query !== '' && !QUERY.test(query.slice(1))) invalid('unexpected characters in the query')
  return { path, query }
}

function modelId (raw: string): string {
  let id: string
  try {
    id = decodeURIComponent(raw)
  } catch {
    invalid('bad percent-encoding in the model id')
  }
  if (id === '' || id === '.' || id === '..' || /[\u0000-\u001f\u007f\\]/.test(id)) invalid('not a model id')
  return id
}

function num (b: Record<string, unknown>, field: string): number | null {
  const v = b[field]
  if (v === undefined || v === null) return null
  // A string or float here would be coerced by some backends (pydantic reads "100000" as 100000): refuse it,
  // so the size the policy checked is the size the backend uses.
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new BadRequestError(`${field} must be a non-negative integer`)
  return v
}

/** n / best_of: a positive integer (a backend would read 0, 2.5 or "4" in its own way), or absent. */
function count (field: string, v: unknown): number | null {
  if (v === undefined || v === null) return null
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new BadRequestError(`${field} must be a positive integer`)
  return v
}

/** How many outputs the request asks for; best_of (completions) must be at least n, as OpenAI requires. */
function choicesOf (spec: EndpointSpec, get: (field: string) => unknown): number {
  let choices = 1
  let n: number | null = null
  for (const f of spec.choiceFields ?? []) {
    const c = count(f, get(f))
    if (c === null) continue
    if (f === 'n') n = c
    else if (f === 'best_of' && n !== null && c < n) throw new BadRequestError('best_of must be at least n')
    choices = Math.max(choices, c)
  }
  return choices
}

function nonEmpty (v: unknown): boolean {
  if (v === undefined || v === null || v === false) return false
  if (Array.isArray(v)) return v.length > 0
  if (typeof v === 'object') return Object.keys(v).length > 0
  return v !== ''
}

/** Tool use, however the request spells it: definitions, a forced choice, or tool turns in the conversation. */
export function usesTools (b: Record<string, unknown>): boolean {
  if (nonEmpty(b.tools) || nonEmpty(b.functions)) return true
  for (const choice of [b.tool_choice, b.function_call]) {
    if (choice !== undefined && choice !== null && choice !== 'none' && choice !== 'auto') return true
  }
  for (const list of [b.messages, b.input]) {
    if (!Array.isArray(list)) continue
    for (const m of list) {
      if (m === null || typeof m !== 'object') continue
      const r = m as Record<string, unknown>
      if (r.role === 'tool' || r.role === 'function' || nonEmpty(r.tool_calls) || nonEmpty(r.function_call)) return true
      if (r.type === 'function_call' || r.type === 'function_call_output') return true
    }
  }
  return false
}

/** Rough prompt size: UTF-8 bytes / 4 of what the model reads (for reservations and maxContextTokens). */
export function estimatePromptTokens (b: Record<string, unknown>): number {
  let bytes = 0
  for (const f of ['messages', 'prompt', 'input', 'instructions', 'tools', 'functions']) {
    const v = b[f]
    if (v === undefined || v === null) continue
    bytes += typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : jsonByteLength(v) ?? Buffer.byteLength(JSON.stringify(v), 'utf8')
  }
  return Math.ceil(bytes / 4)
}

/**
 * What the request asks for. Throws 400 (not canonical, malformed fields) or 404 (not an endpoint we serve).
 * `forwardPath` is the request target exactly as received: it is what the decision is about and what is forwarded.
 */
export function describeRequest (method: string, url: string, body: unknown): RequestShape {
  let spec: EndpointSpec | undefined
  let pathModel: string | null = null
  let objectId: string | null = null
  let path: string
  if (method === 'GET' && url.startsWith(MODEL_ID_PREFIX)) {
    // GET /v1/models/{model} is answered by the gateway itself, never forwarded, so the id may be percent-encoded
    // (SDKs encode `org/model` as `org%2Fmodel`) and may hold `:` (`ft:base:org::id`)
    const q = url.indexOf('?')
    path = q === -1 ? url : url.slice(0, q)
    pathModel = modelId(path.slice(MODEL_ID_PREFIX.length))
    if (q !== -1 && !QUERY.test(url.slice(q + 1))) invalid('unexpected characters in the query')
    spec = ROUTES.get('GET /v1/models')
  } else {
    path = canonicalPath(url).path
    if (path.startsWith('/v1/responses/') || path.startsWith('/v1/fine_tuning/jobs/')) {
      const tpl = template(path.split('/'))
      spec = ROUTES.get(`${method} ${tpl.key}`)
      objectId = tpl.id
    } else {
      // no object id can be in it (template() changes only segments after those two collections)
      spec = ROUTES.get(`${method} ${path}`)
    }
  }
  if (spec === undefined) throw new NotFoundError(`Unknown endpoint ${method} ${path}`)
  if (body instanceof FormFields) return describeForm(spec, url, pathModel, body)
  // Any other non-JSON body arrives as a stream: nothing in it can be checked, so it is not accepted.
  if (body !== null && typeof body === 'object' && typeof (body as { pipe?: unknown }).pipe === 'function') {
    throw new BadRequestError(spec.multipart === true ? 'Send a JSON or multipart/form-data body' : 'Send a JSON body (Content-Type: application/json)')
  }
  const b = (body !== null && typeof body === 'object' && !Array.isArray(body) && !Buffer.isBuffer(body) ? body : {}) as Record<string, unknown>
  if (b.model !== undefined && b.model !== null && typeof b.model !== 'string') throw new BadRequestError('model must be a string')
  // an endpoint naming a stored object is decided on the model that created it (forward-routes.ts), never on a
  // model the caller writes in the body
  const model = pathModel ?? (spec.byObject !== true && typeof b.model === 'string' ? b.model : null)
  if (spec.needsModel && (model === null || model === '')) throw new BadRequestError('you must provide a model parameter')
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') throw new BadRequestError('stream must be a boolean')
  const caps: Capability[] = spec.capability === null ? [] : [spec.capability]
  if (spec.capability !== null && usesTools(b)) caps.push('tools')
  const stream = b.stream === true
  if (stream) caps.push('streaming')
  // vLLM uses max_completion_tokens when both are sent, OpenAI likewise: the larger one is what must be allowed
  let maxOut: number | null = null
  for (const f of spec.outputFields) {
    const n = num(b, f)
    if (n !== null) maxOut = maxOut === null ? n : Math.max(maxOut, n)
  }
  const shape: RequestShape = {
    endpoint: spec.endpoint,
    forwardPath: url,
    model,
    capabilities: caps,
    maxOutputTokens: maxOut,
    n: typeof b.n === 'number' && Number.isSafeInteger(b.n) ? b.n : null,
    choices: choicesOf(spec, (f) => b[f]),
    promptTokens: spec.capability === null ? 0 : estimatePromptTokens(b),
    stream
  }
  if (spec.byObject === true) shape.objectId = objectId
  if (spec.createsObject === true) shape.createsObject = true
  return shape
}

/** A multipart upload: the model and the stream flag are form fields (text, so `stream` is "true"/"false"). */
function describeForm (spec: EndpointSpec, url: string, pathModel: string | null, form: FormFields): RequestShape {
  if (spec.multipart !== true) throw new BadRequestError('Send a JSON body (Content-Type: application/json)')
  const model = pathModel ?? form.one('model')
  if (spec.needsModel && (model === null || model === '')) throw new BadRequestError('you must provide a model parameter')
  const s = form.one('stream')
  if (s !== null && s !== 'true' && s !== 'false') throw new BadRequestError('stream must be true or false')
  const caps: Capability[] = spec.capability === null ? [] : [spec.capability]
  if (s === 'true') caps.push('streaming')
  const prompt = form.one('prompt')
  return {
    endpoint: spec.endpoint,
    forwardPath: url,
    model,
    capabilities: caps,
    maxOutputTokens: null,
    // a form field is text: "4" is 4, anything but a plain positive integer is refused
    choices: choicesOf(spec, (f) => { const v = form.one(f); return v === null ? null : /^[1-9][0-9]{0,8}$/.test(v) ? Number(v) : v }),
    promptTokens: prompt === null ? 0 : estimatePromptTokens({ prompt }),
    stream: s === 'true'
  }
}

/**
 * Write a clamp decided by the policy into the body that will be forwarded: every output bound the caller sent is
 * lowered to `limit`, a bound on each output — the policy has already divided the tier's bound by the request's
 * choices (decide.ts), so n × max_tokens stays within it; if they sent none, the endpoint's usual one is added (an absent bound means "as long as the
 * model likes", which a tier with maxOutputTokens does not allow). True when the body changed.
 */
export function applyOutputClamp (endpoint: Endpoint, body: unknown, limit: number): boolean {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false
  const b = body as Record<string, unknown>
  const fields = OUTPUT_FIELDS.get(endpoint) ?? []
  let found = false
  let changed = false
  for (const f of fields) {
    const v = b[f]
    if (typeof v === 'number') {
      found = true
      if (!(v <= limit)) { b[f] = Math.min(v, limit); changed = true }
    }
  }
  if (!found && fields[0] !== undefined) { b[fields[0]] = limit; changed = true }
  return changed
}
