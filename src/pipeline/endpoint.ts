import type { Capability } from '../config/schema/index.js'
import type { Endpoint, RequestShape } from './context.js'
import { NotFoundError } from '../errors.js'

const ENDPOINTS: Record<string, { endpoint: Endpoint, capability: Capability | null }> = {
  '/v1/chat/completions': { endpoint: 'chat.completions', capability: 'chat' },
  '/v1/completions': { endpoint: 'completions', capability: 'completions' },
  '/v1/embeddings': { endpoint: 'embeddings', capability: 'embeddings' },
  '/v1/models': { endpoint: 'models', capability: null }
}

function num (v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

/**
 * What the request asks for. TODO(issue 3): canonical-path checks, every endpoint, capability detection.
 */
export function describeRequest (method: string, url: string, body: unknown): RequestShape {
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  const known = ENDPOINTS[path]
  if (known === undefined) throw new NotFoundError(`Unknown endpoint ${method} ${path}`)
  const b = (body !== null && typeof body === 'object' ? body : {}) as Record<string, unknown>
  const caps: Capability[] = known.capability === null ? [] : [known.capability]
  const stream = b.stream === true
  if (stream) caps.push('streaming')
  const prompt = JSON.stringify(b.messages ?? b.prompt ?? b.input ?? '')
  return {
    endpoint: known.endpoint,
    forwardPath: url,
    model: typeof b.model === 'string' ? b.model : null,
    capabilities: caps,
    maxOutputTokens: num(b.max_completion_tokens) ?? num(b.max_tokens),
    promptTokens: Math.ceil(prompt.length / 4),
    stream
  }
}
