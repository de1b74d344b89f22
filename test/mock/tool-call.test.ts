/* The mock backend answers a request that offers tools with a call of one, as OpenAI does (checked with its SDK). */
import t from 'tap'
import OpenAI from 'openai'
import { startMockBackend } from '../../src/mock/server.js'

const TOOLS = [
  { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' }, metric: { type: 'boolean' } }, required: ['city'] } } },
  { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string', enum: ['UTC', 'CET'] } } } } }
]

t.test('non-streamed and streamed tool calls; tool_choice picks the tool; none means text', async (t) => {
  const mock = await startMockBackend({ port: 0, ttftMs: 0, itlMs: 0 })
  t.teardown(mock.close)
  const client = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'x' })

  const r = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'weather?' }], tools: TOOLS })
  const choice = r.choices[0]
  t.equal(choice?.finish_reason, 'tool_calls')
  t.equal(choice?.message.content, null)
  const call = choice?.message.tool_calls?.[0]
  t.equal(call?.type, 'function')
  t.match(call?.id, /^call_/)
  t.same(call?.type === 'function' ? [call.function.name, JSON.parse(call.function.arguments)] : [], ['get_weather', { city: 'mock', days: 1, metric: true }], 'the first tool, arguments of each parameter\'s type')

  const picked = await client.chat.completions.create({ model: 'm', messages: [], tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_time' } } })
  const p = picked.choices[0]?.message.tool_calls?.[0]
  t.same(p?.type === 'function' ? [p.function.name, p.function.arguments] : [], ['get_time', '{"zone":"UTC"}'])

  const none = await client.chat.completions.create({ model: 'm', messages: [], tools: TOOLS, tool_choice: 'none', max_tokens: 3 })
  t.equal(none.choices[0]?.finish_reason, 'length')
  t.equal(none.choices[0]?.message.tool_calls, undefined)

  const stream = await client.chat.completions.create({ model: 'm', messages: [], tools: TOOLS, stream: true, stream_options: { include_usage: true } })
  let name = ''
  let args = ''
  let finish: string | null = null
  let usage = 0
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta
    for (const tc of d?.tool_calls ?? []) { name += tc.function?.name ?? ''; args += tc.function?.arguments ?? '' }
    finish = chunk.choices[0]?.finish_reason ?? finish
    usage = chunk.usage?.completion_tokens ?? usage
  }
  t.equal(name, 'get_weather')
  t.same(JSON.parse(args), { city: 'mock', days: 1, metric: true }, 'the streamed argument pieces join into the JSON')
  t.equal(finish, 'tool_calls')
  t.ok(usage > 0, 'usage reported')
})
