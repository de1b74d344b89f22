import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

/** RFC 9110 §7.6.1 connection-specific fields, plus the pre-standard ones proxies still see. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade'
])

/** Never forwarded upstream: the caller's credentials, and what the gateway recomputes or owns. */
const REQUEST_DROP = new Set([
  'authorization', 'x-api-key', 'cookie', 'host', 'content-length', 'expect', 'accept-encoding',
  // The caller's forwarding claims were already judged by net/forwarded.ts; the backend gets none of them.
  'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'x-request-id'
])

/** Backend response headers the gateway owns or recomputes. */
const RESPONSE_DROP = new Set(['content-length', 'x-request-id', 'date', 'set-cookie'])

const COMMA = /\s*,\s*/

/** Header names listed in `Connection` (RFC 9110 §7.6.1): hop-by-hop too, whatever their name. */
function connectionNamed (value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null
  const raw = Array.isArray(value) ? value.join(',') : value
  if (raw === '') return null
  const out = new Set<string>()
  for (const n of raw.toLowerCase().split(COMMA)) if (n !== '') out.add(n)
  return out
}

/**
 * Headers for the upstream request. Hop-by-hop fields and the ones the caller named in `Connection` go
 * first, before anything is added, so a caller cannot name a gateway-added header to strip it
 * (@fastify/reply-from fixed exactly this). The caller's Authorization / x-api-key never leave.
 */
export function upstreamHeaders (incoming: IncomingHttpHeaders, requestId: string, apiKey: string | undefined, keepContentLength: boolean): Record<string, string> {
  const named = connectionNamed(incoming.connection)
  const out: Record<string, string> = {}
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || (named?.has(name) ?? false)) continue
    if (REQUEST_DROP.has(name) && !(keepContentLength && name === 'content-length')) continue
    const v = incoming[name]
    if (v === undefined) continue
    out[name] = Array.isArray(v) ? v.join(', ') : v
  }
  // Usage is read from the body as it flows (SSE and JSON), so the backend must not compress it.
  out['accept-encoding'] = 'identity'
  out['x-request-id'] = requestId
  if (apiKey !== undefined) out.authorization = `Bearer ${apiKey}`
  return out
}

/** Headers of the backend's answer to pass to the caller. */
export function downstreamHeaders (incoming: Readonly<Record<string, string | string[] | undefined>>, keepContentLength: boolean): OutgoingHttpHeaders {
  const named = connectionNamed(incoming.connection)
  const out: OutgoingHttpHeaders = {}
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || (named?.has(name) ?? false)) continue
    if (RESPONSE_DROP.has(name) && !(keepContentLength && name === 'content-length')) continue
    const v = incoming[name]
    if (v !== undefined) out[name] = v
  }
  return out
}
