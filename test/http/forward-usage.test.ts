import t from 'tap'
import { Readable } from 'node:stream'
import { SseUsageTap, JsonUsageTap, readUsage } from '../../src/http/forward-usage.js'
import { rewriteJson, wantsUsageChunk } from '../../src/http/forward-body.js'
import type { Usage } from '../../src/core/types.js'

const chunk = (content: string): string => `data: {"choices":[{"index":0,"delta":{"content":"${content}"}}],"usage":null}`
const usageChunk = 'data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}'

async function run (parts: string[], dropUsageChunk: boolean): Promise<{ out: string, usage: Usage | null, reads: number }> {
  let usage: Usage | null = null
  const tap = new SseUsageTap({ dropUsageChunk, estimatedIn: 5, onUsage: (u) => { usage = u }, onFirstByte: () => {} })
  const src = Readable.from(parts.map((p) => Buffer.from(p)), { objectMode: false })
  let out = ''
  let reads = 0
  // 'data' events in flowing mode: one per push, where an async iterator would merge buffered pushes
  src.pipe(tap).on('data', (c: Buffer) => { out += c.toString('utf8'); reads++ })
  await new Promise((resolve) => tap.once('end', resolve))
  return { out, usage, reads }
}

t.test('SSE: usage read across any chunking, LF or CRLF', async (t) => {
  for (const eol of ['\n', '\r\n']) {
    const text = [chunk('a'), chunk('b'), usageChunk, 'data: [DONE]'].map((l) => l + eol + eol).join('')
    // every split point, so events and lines cut anywhere are handled
    for (let cut = 1; cut < text.length; cut += 7) {
      const r = await run([text.slice(0, cut), text.slice(cut)], false)
      t.equal(r.out, text, 'pass-through is byte-exact')
      t.same(r.usage, { tokensIn: 11, tokensOut: 2 })
    }
    const dropped = await run([...text].map((c) => c), true)
    t.equal(dropped.out, [chunk('a'), chunk('b'), 'data: [DONE]'].map((l) => l + eol + eol).join(''), 'only the usage-only chunk is dropped')
    t.same(dropped.usage, { tokensIn: 11, tokensOut: 2 })
  }
})

t.test('SSE: without a usage chunk, output is estimated one token per content chunk', async (t) => {
  const r = await run([chunk('a') + '\n\n', chunk('b') + '\n\n' + chunk('c') + '\n\n'], false)
  t.same(r.usage, { tokensIn: 5, tokensOut: 3, estimated: true })
  t.equal(r.reads, 2, 'one push per backend chunk, none held back')
})

t.test('SSE: a usage block inside a content chunk (continuous usage) is kept, not dropped', async (t) => {
  const line = 'data: {"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n'
  const r = await run([line], true)
  t.equal(r.out, line)
  t.same(r.usage, { tokensIn: 1, tokensOut: 1 })
})

t.test('JSON: usage parsed from whole bodies; bad JSON yields none', async (t) => {
  for (const [body, want] of [
    ['{"usage":{"prompt_tokens":4,"completion_tokens":6}}', { tokensIn: 4, tokensOut: 6 }],
    ['{"usage":{"prompt_tokens":4,"total_tokens":4}}', { tokensIn: 4, tokensOut: 0 }],
    ['{"error":{"message":"x"}}', null],
    ['not json', null]
  ] as const) {
    let usage: Usage | null = null
    const tap = new JsonUsageTap((u) => { usage = u }, () => {})
    let out = ''
    for await (const c of Readable.from([Buffer.from(body.slice(0, 5)), Buffer.from(body.slice(5))]).pipe(tap)) out += (c as Buffer).toString()
    t.equal(out, body)
    t.same(usage, want)
  }
  t.equal(readUsage({ prompt_tokens: -1 }), null, 'nonsense counts are ignored')
})

t.test('JSON body rewrite: model, include_usage on streams', async (t) => {
  const r = (b: Record<string, unknown>, rw: Parameters<typeof rewriteJson>[1]): Record<string, unknown> => JSON.parse(rewriteJson(b, rw)) as Record<string, unknown>
  t.same(r({ model: 'a', stream: true }, { upstreamModel: 'b' }), { model: 'b', stream: true, stream_options: { include_usage: true } })
  t.same(r({ model: 'a', stream: false }, {}), { model: 'a', stream: false })
  t.equal(wantsUsageChunk({ stream_options: { include_usage: true } }), true)
  t.equal(wantsUsageChunk({ stream_options: null }), false)
  const original = { model: 'a', stream: true, stream_options: { x: 1 } }
  rewriteJson(original, { upstreamModel: 'b' })
  t.same(original, { model: 'a', stream: true, stream_options: { x: 1 } }, 'the parsed body is not mutated')
})
