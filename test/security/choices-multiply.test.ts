/*
 * `n` and `best_of` multiply the output: a tier's maxOutputTokens bounds the whole request (choices × max_tokens),
 * the token reservation is choices × max_tokens, and maxChoices caps the outputs of one request. Every case goes
 * through the data plane to a real upstream on port 0 and asserts what the backend received.
 */
import t, { type Test } from 'tap'
import { buildTestGateway, baseConfig, sha, startUpstream, type Upstream, type TestGateway } from '../helpers/gateway.js'

const msgs = [{ role: 'user', content: 'hi' }]

async function setup (t: Test): Promise<{ gw: TestGateway, up: Upstream }> {
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  const cfg = baseConfig(up.url, {
    tiers: {
      // the location tier of the test callers (US, tier1) allows everything; the key tiers bound the output
      tier1: { models: ['*'], capabilities: ['chat', 'completions', 'images', 'streaming'], limits: { tokensPerMinute: 1_000_000 } },
      tier2: { models: ['*'], capabilities: ['chat', 'completions', 'images'], maxOutputTokens: 1024, maxChoices: 8 },
      strict: { models: ['*'], capabilities: ['chat', 'completions'], maxOutputTokens: 1024, outputTokens: 'reject' },
      embargoed: { deny: true }
    },
    keys: [
      ...(baseConfig().keys as unknown[]),
      { id: 'k3', sha256: sha('test-key-strict'), org: 'Org Three', tier: 'strict' }
    ]
  })
  const gw = await buildTestGateway(cfg)
  t.teardown(async () => { await gw.close(); await up.close() })
  return { gw, up }
}

async function post (gw: TestGateway, key: string, url: string, body: Record<string, unknown>): Promise<{ status: number, code: string | null, headers: Record<string, unknown> }> {
  const res = await gw.app.inject({ method: 'POST', url, remoteAddress: '8.8.8.8', headers: { authorization: `Bearer ${key}` }, payload: body })
  const code = res.statusCode >= 400 ? (res.json() as { error: { code: string } }).error.code : null
  return { status: res.statusCode, code, headers: res.headers }
}

t.test('the output bound is per request: max_tokens is clamped to floor(bound / n)', async (t) => {
  const { gw, up } = await setup(t)
  const cases: Array<[string, string, Record<string, unknown>, Record<string, unknown>]> = [
    ['chat n=4 max_tokens=1000', '/v1/chat/completions', { n: 4, max_tokens: 1000 }, { n: 4, max_tokens: 256 }],
    ['chat n=4, no bound', '/v1/chat/completions', { n: 4 }, { n: 4, max_tokens: 256 }],
    ['chat n=3 max_completion_tokens=1000', '/v1/chat/completions', { n: 3, max_completion_tokens: 1000 }, { n: 3, max_completion_tokens: 341 }],
    ['chat n=2 max_tokens=100 (within the bound)', '/v1/chat/completions', { n: 2, max_tokens: 100 }, { n: 2, max_tokens: 100 }],
    ['chat n=1 max_tokens=5000', '/v1/chat/completions', { n: 1, max_tokens: 5000 }, { n: 1, max_tokens: 1024 }],
    ['completions best_of=8 n=2 max_tokens=1000', '/v1/completions', { prompt: 'x', best_of: 8, n: 2, max_tokens: 1000 }, { best_of: 8, n: 2, max_tokens: 128 }],
    ['completions n=5', '/v1/completions', { prompt: 'x', n: 5, max_tokens: 1000 }, { n: 5, max_tokens: 204 }]
  ]
  for (const [name, url, extra, want] of cases) {
    const before = up.requests.length
    const res = await post(gw, 'test-key-tier2', url, { model: 'llama-3.1-8b', messages: url.includes('chat') ? msgs : undefined, ...extra })
    t.equal(res.status, 200, `${name}: 200`)
    t.equal(up.requests.length, before + 1, `${name}: forwarded`)
    const got = JSON.parse(up.requests.at(-1)?.body ?? '{}') as Record<string, unknown>
    t.match(got, want, `${name}: the backend got ${JSON.stringify(want)}`)
    const choices = Number(got.best_of ?? got.n ?? 1)
    t.ok(choices * Number(got.max_tokens ?? got.max_completion_tokens) <= 1024, `${name}: choices × max_tokens within 1024`)
  }
})

t.test('refusals: more choices than maxChoices, or than the bound has tokens; reject tiers count n × max_tokens', async (t) => {
  const { gw, up } = await setup(t)
  const cases: Array<[string, string, string, Record<string, unknown>]> = [
    ['n=1000 over maxChoices 8', 'test-key-tier2', '/v1/chat/completions', { n: 1000, max_tokens: 1000 }],
    ['n=9 over maxChoices 8', 'test-key-tier2', '/v1/chat/completions', { n: 9, max_tokens: 1 }],
    ['best_of=9 over maxChoices 8', 'test-key-tier2', '/v1/completions', { prompt: 'x', best_of: 9, max_tokens: 1 }],
    ['images n=9 over maxChoices 8', 'test-key-tier2', '/v1/images/generations', { prompt: 'x', n: 9 }],
    ['n=2000: not even 1 token each within 1024', 'test-key-strict', '/v1/chat/completions', { n: 2000, max_tokens: 1 }],
    ['reject tier: 4 × 300 > 1024', 'test-key-strict', '/v1/chat/completions', { n: 4, max_tokens: 300 }],
    ['reject tier: best_of 2 × 600 > 1024', 'test-key-strict', '/v1/completions', { prompt: 'x', best_of: 2, max_tokens: 600 }]
  ]
  for (const [name, key, url, extra] of cases) {
    const res = await post(gw, key, url, { model: 'llama-3.1-8b', messages: url.includes('chat') ? msgs : undefined, ...extra })
    t.same([res.status, res.code], [403, 'capability_not_permitted'], name)
  }
  const ok = await post(gw, 'test-key-strict', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: msgs, n: 4, max_tokens: 256 })
  t.equal(ok.status, 200, 'reject tier: 4 × 256 = 1024 is within')
  t.equal(up.requests.length, 1, 'only that one reached the backend')
  const images = await post(gw, 'test-key-tier2', '/v1/images/generations', { model: 'llama-3.1-8b', prompt: 'x', n: 8 })
  t.equal(images.status, 200, 'images n=8 within maxChoices 8')
})

t.test('n and best_of must be positive integers (400, nothing forwarded)', async (t) => {
  const { gw, up } = await setup(t)
  for (const n of [0, -1, 1.5, '2', true, 1e20]) {
    const res = await post(gw, 'test-key-tier1', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: msgs, n })
    t.same([res.status, res.code], [400, 'invalid_request'], `n ${JSON.stringify(n)}`)
    const c = await post(gw, 'test-key-tier1', '/v1/completions', { model: 'llama-3.1-8b', prompt: 'x', best_of: n })
    t.same([c.status, c.code], [400, 'invalid_request'], `best_of ${JSON.stringify(n)}`)
  }
  const less = await post(gw, 'test-key-tier1', '/v1/completions', { model: 'llama-3.1-8b', prompt: 'x', n: 4, best_of: 2 })
  t.same([less.status, less.code], [400, 'invalid_request'], 'best_of below n')
  t.equal(up.requests.length, 0)
  const nul = await post(gw, 'test-key-tier1', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: msgs, n: null })
  t.equal(nul.status, 200, 'n: null is absent')
})

t.test('the token reservation is choices × max_tokens', async (t) => {
  const { gw } = await setup(t)
  // tier1 (no output bound) has tokensPerMinute 1,000,000; the prompt estimate is a few tokens
  const one = await post(gw, 'test-key-tier1', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: msgs, n: 1, max_tokens: 1000 })
  const spentOne = 1_000_000 - Number(one.headers['x-ratelimit-remaining-tokens'])
  t.ok(spentOne >= 1000 && spentOne < 1100, `n=1: reserved ${spentOne}`)
  const eight = await post(gw, 'test-key-tier1', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: msgs, n: 8, max_tokens: 1000 })
  // the first request settled to its usage (2 tokens); the second reserved 8 × 1000 + prompt
  const spentEight = 1_000_000 - 2 - Number(eight.headers['x-ratelimit-remaining-tokens'])
  t.ok(spentEight >= 8000 && spentEight < 8100, `n=8: reserved ${spentEight}`)
})
