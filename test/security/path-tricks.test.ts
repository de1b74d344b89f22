/*
 * Path tricks never bypass a capability decision: the decision is made on exactly the request target that is
 * forwarded, or the request is refused (400 not canonical, 404 not an endpoint). Requests are written raw on a
 * socket so no client library cleans the target up first. The key (tier2) may chat but not use tools; every
 * request carries tools, so the only acceptable answers are 400, 403 and 404, and the backend sees nothing.
 */
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { gatewayWithUpstream } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'

const TOOLS_BODY = JSON.stringify({
  model: 'llama-3.1-8b',
  messages: [{ role: 'user', content: 'hi' }],
  tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }]
})

const tricks: Array<[string, 400 | 404]> = [
  ['//v1/chat/completions', 400],
  ['/v1//chat/completions', 400],
  ['/v1/chat//completions', 400],
  ['/v1/chat/completions/', 400],
  ['/v1/chat/completions//', 400],
  ['/v1/../v1/chat/completions', 400],
  ['/v1/embeddings/../chat/completions', 400],
  ['/v1/./chat/completions', 400],
  ['/./v1/chat/completions', 400],
  ['/v1/chat/completions/.', 400],
  ['/v1/chat/completions/..', 400],
  ['/v1/%2e%2e/v1/chat/completions', 400],
  ['/v1/%2E%2E/v1/chat/completions', 400],
  ['/v1/embeddings/%2e%2e/chat/completions', 400],
  ['/v1/chat%2Fcompletions', 400],
  ['/v1/chat%2fcompletions', 400],
  ['/v1%2Fchat%2Fcompletions', 400],
  ['/v1/%63hat/completions', 400],
  ['/v1/chat/completions%00', 400],
  ['/v1/chat/completions%20', 400],
  ['/v1/chat%5ccompletions', 400],
  ['/v1/chat\\completions', 400],
  ['/v1\\chat\\completions', 400],
  ['/v1/chat/completions;x=1', 400],
  ['/v1/chat/completions;/../embeddings', 400],
  ['/v1/chat/completions?x=<script>', 400],
  ['/v1/chat/completions?%zz', 400],
  ['/v1/chat/comp%6cetions', 400],
  ['http://127.0.0.1/v1/chat/completions', 400],
  ['/V1/chat/completions', 404],
  ['/v1/Chat/Completions', 404],
  ['/v1/CHAT/COMPLETIONS', 404],
  ['/v1/chat/completions.json', 404],
  ['/v2/chat/completions', 404],
  ['/chat/completions', 404],
  ['/v1/chat', 404],
  ['/v1/files', 404],
  ['/v1/moderations', 404]
]

t.test('no path trick reaches the backend or escapes the tools decision', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"choices":[]}') })
  await gw.app.listen({ port: 0, host: '127.0.0.1' })
  const port = (gw.app.server.address() as AddressInfo).port
  const auth: [string, string] = ['authorization', 'Bearer test-key-tier2']

  const canonical = await rawRequest(port, '/v1/chat/completions', [auth], TOOLS_BODY)
  t.equal(canonical.status, 403, 'the canonical path is refused for tools')
  t.match(canonical.body, /capability_not_permitted/)

  for (const [target, want] of tricks) {
    const res = await rawRequest(port, target, [auth], TOOLS_BODY)
    // Node's own HTTP parser may refuse some targets (400) before the gateway sees them: also a refusal
    t.equal(res.status, want, `${target} → ${want}`)
  }
  t.equal(up.requests.length, 0, 'the backend received nothing')

  // the same key without tools, on the canonical path with a query: forwarded byte for byte
  const plain = JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] })
  const ok = await rawRequest(port, '/v1/chat/completions?trace=a%2Fb', [auth], plain)
  t.equal(ok.status, 200)
  t.equal(up.requests.length, 1)
  t.equal(up.requests[0]?.url, '/v1/chat/completions?trace=a%2Fb', 'the backend got exactly the target the decision was made on')
})

// (inject resolves `..` and `%2e%2e` itself, as WHATWG URL does: dot segments are covered on the raw socket above)
t.test('the same tricks through inject, for other methods and endpoints', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.end('{}') })
  const cases: Array<[string, string, number]> = [
    ['GET', '/v1/chat/completions', 404],
    ['DELETE', '/v1/chat/completions', 404],
    ['POST', '/v1/embeddings/', 400],
    ['POST', '/v1/fine_tuning/jobs/x%2Fchat', 400],
    ['GET', '/v1/fine_tuning/jobs/ftjob-1/%2E', 400],
    ['GET', '/v1/models/', 400],
    ['GET', '/v1/models/%2e%2e', 400],
    ['POST', '/v1/responses/resp_1/cancel/', 400]
  ]
  for (const [method, url, want] of cases) {
    const res = await gw.app.inject({ method: method as 'GET', url, headers: { authorization: 'Bearer test-key-tier2' }, ...(method === 'POST' ? { payload: JSON.parse(TOOLS_BODY) as object } : {}) })
    t.equal(res.statusCode, want, `${method} ${url}`)
  }
  t.equal(up.requests.length, 0)
})
