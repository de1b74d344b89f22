/*
 * fastify + @fastify/reply-from with no policy: the framework's own cost over the bare proxy. Bodies are streamed
 * (no JSON parse), as reply-from's README recommends for proxies; `x-bench-upstream: sse` picks the second upstream.
 *   node fastify-proxy.mjs PORT JSON_UPSTREAM SSE_UPSTREAM CONNECTIONS
 */
import Fastify from 'fastify'
import replyFrom from '@fastify/reply-from'

const [port, jsonUrl, sseUrl, connections] = process.argv.slice(2)
const app = Fastify({ logger: false, keepAliveTimeout: 120_000 })
app.removeAllContentTypeParsers()
app.addContentTypeParser('*', (request, payload, done) => { done(null, payload) })
await app.register(replyFrom, { undici: { connections: Number(connections) } })
app.all('/*', (request, reply) => {
  const base = request.headers['x-bench-upstream'] === 'sse' ? sseUrl : jsonUrl
  return reply.from(base + request.url)
})
await app.listen({ port: Number(port), host: '127.0.0.1' })
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
