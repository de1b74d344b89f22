/*
 * The benchmark's yardstick: a bare reverse proxy, node:http in front of one undici Pool per upstream, no framework
 * and no policy. Requests carrying `x-bench-upstream: sse` go to the second upstream.
 *   node bare-proxy.mjs PORT JSON_UPSTREAM SSE_UPSTREAM CONNECTIONS [streamed]
 *
 * It moves bytes the way geogate does, so that the ratios divide by the cheapest proxy doing the same job: the
 * request body is read whole and sent as one buffer, a JSON answer that says its length (up to 256 KiB) is read
 * whole and sent as one buffer, anything else (SSE) is piped through. Streaming the small bodies instead cost
 * 2.4× the CPU per request on the development VM (docs/performance-log.md, "The yardstick"); `streamed` (the bench's bare-streamed
 * row) does that instead: the request body and every answer piped through.
 */
import { createServer } from 'node:http'
import { pipeline } from 'node:stream'
import { Pool } from 'undici'

const [port, jsonUrl, sseUrl, connections, mode] = process.argv.slice(2)
const streamed = mode === 'streamed'
const pools = { json: new Pool(jsonUrl, { connections: Number(connections) }), sse: new Pool(sseUrl, { connections: Number(connections) }) }
// RFC 9110 §7.6.1: hop-by-hop fields are not forwarded (nor those the Connection field names; the bench sends none)
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host'])
const WHOLE_ANSWER_MAX = 256 * 1024

function strip (headers) {
  const out = {}
  for (const k in headers) if (!HOP.has(k)) out[k] = headers[k]
  return out
}

function readAll (stream, done) {
  const parts = []
  stream.on('data', (c) => { parts.push(c) })
  stream.on('end', () => { done(null, parts.length === 1 ? parts[0] : Buffer.concat(parts)) })
  stream.on('error', (err) => { done(err) })
}

/** `body`: the request itself (streamed) or its bytes; a small JSON answer is read whole unless streamed */
function forward (req, res, pool, body) {
  pool.request({ method: req.method, path: req.url, headers: strip(req.headers), body }, (err, up) => {
    if (err) { if (!res.headersSent) res.writeHead(502).end(); else res.destroy(); return }
    if (!streamed && String(up.headers['content-type']).includes('json') && Number(up.headers['content-length']) <= WHOLE_ANSWER_MAX) {
      readAll(up.body, (err, answer) => {
        if (err) { res.destroy(); return }
        res.writeHead(up.statusCode, strip(up.headers)).end(answer)
      })
      return
    }
    res.writeHead(up.statusCode, strip(up.headers))
    pipeline(up.body, res, () => {})
  })
}

const server = createServer((req, res) => {
  const pool = req.headers['x-bench-upstream'] === 'sse' ? pools.sse : pools.json
  if (streamed) { forward(req, res, pool, req); return }
  readAll(req, (err, body) => {
    if (err) { res.destroy(); return }
    forward(req, res, pool, body.length === 0 ? null : body)
  })
})
server.keepAliveTimeout = 120_000
server.listen(Number(port), '127.0.0.1')
process.on('SIGTERM', () => { server.closeAllConnections(); server.close(() => process.exit(0)) })
