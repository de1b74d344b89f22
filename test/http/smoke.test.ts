import t from 'tap'
import { buildTestGateway, baseConfig, gatewayWithUpstream } from '../helpers/gateway.js'

t.test('a permitted chat completion reaches the backend and comes back', async (t) => {
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))
  })
  const res = await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { authorization: 'Bearer test-key-tier1' },
    payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
  })
  t.equal(res.statusCode, 200)
  t.ok(res.headers['x-request-id'])
  t.equal(up.requests.length, 1)
  t.equal(up.requests[0]?.headers.authorization, undefined, 'caller credentials never reach the backend')
})

t.test('missing and unknown keys get 401 in OpenAI shape', async (t) => {
  const gw = await buildTestGateway(baseConfig())
  t.teardown(gw.close)
  for (const headers of [{}, { authorization: 'Bearer nope' }, { 'x-api-key': 'nope' }]) {
    const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers, payload: { model: 'llama-3.1-8b' } })
    t.equal(res.statusCode, 401)
    t.equal(res.json().error.type, 'authentication_error')
  }
})
