/*
 * The benchmark's yardstick: a bare reverse proxy, node:http in front of one undici Pool per upstream, no framework
 * and no policy. Requests carrying `x-bench-upstream: sse` go to the second upstream.
 *   node bare-proxy.mjs PORT JSON_UPSTREAM SSE_UPSTREAM CONNECTIONS
 */
import { createServer } from 'node:http'
import { pipeline } from 'node:stream'
import { Pool } from 'undici'

const [port, jsonUrl, sseUrl, connections] = process.argv.slice(2)
const pools = { json: new Pool(jsonUrl, { connections: Number(connections) }), sse: new Pool(sseUrl, { connections: Number(connections) }) }
// RFC 9110 §7.6.1: hop-by-hop fields are not forwarded (nor those the Connection field names; the bench sends none)
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host'])

function strip (headers) {
  const out = {}
  for (const k in headers) if (!HOP.has(k)) out[k] = headers[k]
  return out
}

const server = createServer((req, res) => {
  const pool = req.headers['x-bench-upstream'] === 'sse' ? pools.sse : pools.json
  pool.request({ method: req.method, path: req.url, headers: strip(req.headers), body: req }, (err, up) => {
    if (err) { if (!res.headersSent) res.writeHead(502).end(); else res.destroy(); return }
    res.writeHead(up.statusCode, strip(up.headers))
    pipeline(up.body, res, () => {})
  })
})
server.keepAliveTimeout = 120_000
server.listen(Number(port), '127.0.0.1')
process.on('SIGTERM', () => { server.closeAllConnections(); server.close(() => process.exit(0)) })
