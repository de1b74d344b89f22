import t from 'tap'
import { describeRequest, canonicalPath, applyOutputClamp, usesTools, estimatePromptTokens } from '../../src/policy/endpoint.js'

const msg = [{ role: 'user', content: 'hi' }]

function thrown (fn: () => unknown): { statusCode?: number, message: string } {
  try { fn() } catch (err) { return err as { statusCode?: number, message: string } }
  return { message: 'did not throw' }
}

t.test('every /v1 endpoint maps to its endpoint and capability', async (t) => {
  const cases: Array<[string, string, Record<string, unknown> | undefined, string, string[]]> = [
    ['POST', '/v1/chat/completions', { model: 'm', messages: msg }, 'chat.completions', ['chat']],
    ['POST', '/v1/completions', { model: 'm', prompt: 'x' }, 'completions', ['completions']],
    ['POST', '/v1/embeddings', { model: 'm', input: 'x' }, 'embeddings', ['embeddings']],
    ['POST', '/v1/images/generations', { model: 'm', prompt: 'x' }, 'images.generations', ['images']],
    ['POST', '/v1/images/edits', { model: 'm' }, 'images.edits', ['images']],
    ['POST', '/v1/images/variations', { model: 'm' }, 'images.variations', ['images']],
    ['POST', '/v1/audio/transcriptions', { model: 'm' }, 'audio.transcriptions', ['audio']],
    ['POST', '/v1/audio/translations', { model: 'm' }, 'audio.translations', ['audio']],
    ['POST', '/v1/audio/speech', { model: 'm', input: 'x' }, 'audio.speech', ['audio']],
    ['POST', '/v1/responses', { model: 'm', input: 'x' }, 'responses', ['chat']],
    ['GET', '/v1/responses/resp_123', undefined, 'responses', ['chat']],
    ['DELETE', '/v1/responses/resp_123', undefined, 'responses', ['chat']],
    ['GET', '/v1/responses/resp_123/input_items', undefined, 'responses', ['chat']],
    ['POST', '/v1/responses/resp_123/cancel', undefined, 'responses', ['chat']],
    ['POST', '/v1/fine_tuning/jobs', { model: 'm', training_file: 'file-1' }, 'fine_tuning.jobs', ['fine-tuning']],
    ['GET', '/v1/fine_tuning/jobs?limit=10&after=ftjob-1', undefined, 'fine_tuning.jobs', ['fine-tuning']],
    ['GET', '/v1/fine_tuning/jobs/ftjob-abc', undefined, 'fine_tuning.jobs', ['fine-tuning']],
    ['POST', '/v1/fine_tuning/jobs/ftjob-abc/cancel', undefined, 'fine_tuning.jobs', ['fine-tuning']],
    ['GET', '/v1/fine_tuning/jobs/ftjob-abc/events', undefined, 'fine_tuning.jobs', ['fine-tuning']],
    ['GET', '/v1/fine_tuning/jobs/ftjob-abc/checkpoints', undefined, 'fine_tuning.jobs', ['fine-tuning']],
    ['GET', '/v1/models', undefined, 'models', []],
    ['GET', '/v1/models/llama-3.1-8b', undefined, 'models', []]
  ]
  for (const [method, url, body, endpoint, caps] of cases) {
    const s = describeRequest(method, url, body)
    t.equal(s.endpoint, endpoint, `${method} ${url}`)
    t.same(s.capabilities, caps, `${method} ${url} capabilities`)
    t.equal(s.forwardPath, url, `${method} ${url} forwarded as received`)
  }
  t.equal(describeRequest('GET', '/v1/models/llama-3.1-8b', undefined).model, 'llama-3.1-8b')
  t.equal(describeRequest('GET', '/v1/models/meta-llama%2FLlama-3.1-8B', undefined).model, 'meta-llama/Llama-3.1-8B', 'an encoded id (never forwarded)')
  t.equal(describeRequest('GET', '/v1/models/meta-llama/Llama-3.1-8B', undefined).model, 'meta-llama/Llama-3.1-8B')
  t.equal(describeRequest('GET', '/v1/models/ft:base:org::x1?a=b', undefined).model, 'ft:base:org::x1')
  for (const bad of ['/v1/models/', '/v1/models/%2e%2e', '/v1/models/.', '/v1/models/%zz', '/v1/models/a%00b', '/v1/models/a?x=<']) {
    t.equal(thrown(() => describeRequest('GET', bad, undefined)).statusCode, 400, bad)
  }
})

t.test('refusals: 404 for what we do not serve, 400 for non-canonical targets and bad fields', async (t) => {
  const notFound: Array<[string, string]> = [['GET', '/v1/chat/completions'], ['POST', '/v1/files'], ['POST', '/v1/fine_tuning/jobs/ftjob-1/pause'], ['PUT', '/v1/embeddings'], ['POST', '/V1/embeddings']]
  for (const [m, u] of notFound) t.equal(thrown(() => describeRequest(m, u, {})).statusCode, 404, `${m} ${u}`)
  const bad: Array<[string, Record<string, unknown>]> = [
    ['model must be a string', { model: 1, messages: msg }],
    ['you must provide a model parameter', { messages: msg }],
    ['you must provide a model parameter', { model: '', messages: msg }],
    ['stream must be a boolean', { model: 'm', stream: 'true' }],
    ['stream must be a boolean', { model: 'm', stream: 1 }],
    ['max_tokens must be a non-negative integer', { model: 'm', max_tokens: '100000' }],
    ['max_tokens must be a non-negative integer', { model: 'm', max_tokens: 10.5 }],
    ['max_tokens must be a non-negative integer', { model: 'm', max_tokens: -1 }],
    ['max_completion_tokens must be a non-negative integer', { model: 'm', max_completion_tokens: [1] }]
  ]
  for (const [message, body] of bad) {
    const e = thrown(() => describeRequest('POST', '/v1/chat/completions', body))
    t.same([e.statusCode, e.message], [400, message], JSON.stringify(body))
  }
  t.equal(thrown(() => describeRequest('POST', '/v1/responses', { model: 'm', max_output_tokens: '9' })).statusCode, 400)
  t.equal(thrown(() => canonicalPath('v1/chat/completions')).statusCode, 400)
  t.same(canonicalPath('/v1/models?x=1'), { path: '/v1/models', query: '?x=1' })
})

t.test('capability detection from the body', async (t) => {
  const caps = (body: Record<string, unknown>, url = '/v1/chat/completions'): string[] => describeRequest('POST', url, { model: 'm', messages: msg, ...body }).capabilities
  t.same(caps({}), ['chat'])
  t.same(caps({ stream: true }), ['chat', 'streaming'])
  t.same(caps({ stream: false }), ['chat'])
  t.same(caps({ stream: null }), ['chat'])
  t.same(caps({ tools: [{ type: 'function', function: { name: 'f' } }] }), ['chat', 'tools'])
  t.same(caps({ tools: [] }), ['chat'], 'an empty tools list is no tools')
  t.same(caps({ tools: null, tool_choice: 'none' }), ['chat'])
  t.same(caps({ tool_choice: 'required' }), ['chat', 'tools'])
  t.same(caps({ tool_choice: { type: 'function', function: { name: 'f' } } }), ['chat', 'tools'])
  t.same(caps({ functions: [{ name: 'f' }] }), ['chat', 'tools'])
  t.same(caps({ function_call: { name: 'f' } }), ['chat', 'tools'])
  t.same(caps({ messages: [{ role: 'assistant', tool_calls: [{ id: '1' }] }, { role: 'tool', content: '1' }] }), ['chat', 'tools'], 'tool turns')
  t.same(caps({ messages: [{ role: 'function', name: 'f', content: '1' }] }), ['chat', 'tools'])
  t.same(caps({ tools: [{ type: 'function' }], stream: true }, '/v1/completions'), ['completions', 'tools', 'streaming'])
  t.same(caps({ tools: [{ type: 'function' }] }, '/v1/embeddings'), ['embeddings', 'tools'], 'tools are detected on every endpoint')
  t.same(describeRequest('POST', '/v1/responses', { model: 'm', input: [{ type: 'function_call_output', call_id: 'c', output: '1' }] }).capabilities, ['chat', 'tools'])
  t.same(describeRequest('POST', '/v1/responses', { model: 'm', input: 'x', tools: [{ type: 'web_search' }] }).capabilities, ['chat', 'tools'])
  t.ok(usesTools({ tool_choice: 'auto', tools: [{}] }))
  t.notOk(usesTools({ tool_choice: 'auto' }))
})

t.test('output size and prompt estimate', async (t) => {
  const s = (body: Record<string, unknown>, url = '/v1/chat/completions'): number | null => describeRequest('POST', url, { model: 'm', messages: msg, ...body }).maxOutputTokens
  t.equal(s({}), null)
  t.equal(s({ max_tokens: 10 }), 10)
  t.equal(s({ max_completion_tokens: 20 }), 20)
  t.equal(s({ max_tokens: 30, max_completion_tokens: 20 }), 30, 'the larger of the two')
  t.equal(s({ max_tokens: null }), null)
  t.equal(s({ max_output_tokens: 40 }, '/v1/responses'), 40)
  t.equal(s({ max_tokens: 40 }, '/v1/embeddings'), null, 'embeddings have no output bound')
  t.equal(estimatePromptTokens({ prompt: 'x'.repeat(400) }), 100)
  t.equal(estimatePromptTokens({ input: 'é'.repeat(200) }), 100, 'UTF-8 bytes, not characters')
  t.ok(describeRequest('POST', '/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x'.repeat(4000) }] }).promptTokens >= 1000)
  t.equal(describeRequest('GET', '/v1/models', undefined).promptTokens, 0)
})

t.test('applyOutputClamp writes the bound into the forwarded body', async (t) => {
  const a: Record<string, unknown> = { model: 'm', max_tokens: 5000 }
  applyOutputClamp('chat.completions', a, 1024)
  t.same(a, { model: 'm', max_tokens: 1024 })
  const b: Record<string, unknown> = { model: 'm', max_tokens: 10, max_completion_tokens: 5000 }
  applyOutputClamp('chat.completions', b, 1024)
  t.same(b, { model: 'm', max_tokens: 10, max_completion_tokens: 1024 })
  const c: Record<string, unknown> = { model: 'm' }
  applyOutputClamp('chat.completions', c, 1024)
  t.same(c, { model: 'm', max_tokens: 1024 }, 'absent bound is added')
  const d: Record<string, unknown> = { model: 'm' }
  applyOutputClamp('responses', d, 64)
  t.same(d, { model: 'm', max_output_tokens: 64 })
  const e: Record<string, unknown> = { model: 'm' }
  applyOutputClamp('embeddings', e, 64)
  t.same(e, { model: 'm' }, 'nothing to bound')
})
