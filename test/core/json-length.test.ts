/*
 * jsonByteLength is the UTF-8 length JSON.stringify would produce, for every value JSON.parse can make, so the prompt
 * estimate (policy/endpoint.ts) is the same number it was when the fields were serialised to be measured.
 */
import t from 'tap'
import { jsonByteLength } from '../../src/core/json-length.js'
import { estimatePromptTokens } from '../../src/policy/endpoint.js'

const stringified = (v: unknown): number => Buffer.byteLength(JSON.stringify(v), 'utf8')
const escape = (s: string): string => s.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)

t.test('the escapes, surrogates and numbers JSON.stringify writes', async (t) => {
  const cases: unknown[] = [
    '', 'plain', 'a"b\\c', '\b\f\n\r\t', '\u0000\u0001\u001f\u007f', 'é中€', '\u2028\u2029',
    '\ud83d\ude00', '\ud800', 'x\udc00y', '\udc00\ud800', '\ud83d\ud83d\ude00',
    0, -0, 1, -1.5, 1e21, 1.5e-7, 2 ** 53 + 2, Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity, NaN,
    true, false, null, [], {}, [[]], [null, 1, 'a'], { '': '' }, { 'k"\n': ['v', { x: [1, 2, 3] }] },
    JSON.parse('{"messages":[{"role":"user","content":"say \\"hi\\"\\n"}],"n":123456789012345678901}')
  ]
  // named by their escaped form: a lone surrogate or U+2028 in a test name would break the TAP stream
  for (const v of cases) t.equal(jsonByteLength(v), stringified(v), escape(JSON.stringify(v)))
})

t.test('random JSON values: the same length as serialised', async (t) => {
  let seed = 42
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T
  const units = [0x22, 0x5c, 0x00, 0x08, 0x0a, 0x1f, 0x20, 0x41, 0x7e, 0x7f, 0xe9, 0x7ff, 0x800, 0x4e2d, 0xd83d, 0xde00, 0xdbff, 0xdc00, 0xfffd, 0xffff]
  const str = (): string => String.fromCharCode(...Array.from({ length: Math.floor(rnd() * 12) }, () => pick(units)))
  const value = (depth: number): unknown => {
    const k = Math.floor(rnd() * (depth > 3 ? 4 : 6))
    if (k === 0) return str()
    if (k === 1) return pick([0, -0, 7, -3.25, 1e300, 5e-324, 123456789.123, 2 ** 60])
    if (k === 2) return pick([true, false, null])
    if (k === 3) return str()
    if (k === 4) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1))
    return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, () => [str(), value(depth + 1)]))
  }
  let same = 0
  for (let i = 0; i < 3000; i++) {
    const v = JSON.parse(JSON.stringify(value(0))) as unknown // what JSON.parse makes of it
    if (jsonByteLength(v) === stringified(v)) same++
    else t.fail(`differs for ${escape(JSON.stringify(v))}`)
  }
  t.equal(same, 3000)
})

t.test('anything JSON.parse does not make is left to JSON.stringify (null)', async (t) => {
  class Part { text = 'x' }
  for (const v of [new Part(), { toJSON: () => 'x' }, new Date(0), [undefined], { a: undefined }, 1n, () => 1, Symbol('s'), { a: [new Map()] }]) {
    t.equal(jsonByteLength(v), null, String(typeof v))
  }
})

t.test('the prompt estimate is what it was with the fields serialised', async (t) => {
  const body = JSON.parse(JSON.stringify({
    model: 'm',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Résumé of "this":\n' + 'x'.repeat(1000) }],
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }]
  })) as Record<string, unknown>
  const bytes = stringified(body.messages) + stringified(body.tools)
  t.equal(estimatePromptTokens(body), Math.ceil(bytes / 4))
})
