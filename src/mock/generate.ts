/**
 * Deterministic text and vectors for the mock accelerator: the same request always gets the same answer,
 * so tests and demos can assert on it. One "token" is one word (plus its leading space).
 */
const WORDS = ('geogate forwarded this answer from the mock accelerator backend so you can see streaming tokens ' +
  'arrive one by one with realistic timing while the gateway checks location policy limits and audit').split(' ')

/** FNV-1a: a stable seed from the prompt text. */
export function seedOf (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

/** The i-th token of the answer to a prompt with this seed. */
export function token (seed: number, i: number): string {
  const w = WORDS[(seed + i) % WORDS.length] ?? 'token'
  return i === 0 ? w : ' ' + w
}

/** Prompt size in tokens: words of the text, at least 1 (a stand-in for a tokenizer, stable across runs). */
export function countTokens (text: string): number {
  let n = 0
  let inWord = false
  for (let i = 0; i < text.length; i++) {
    const space = text.charCodeAt(i) <= 0x20
    if (!space && !inWord) n++
    inWord = !space
  }
  return Math.max(1, n)
}

/** Text of a chat `messages` array or a completions `prompt`, for seeding and counting. */
export function promptText (body: Record<string, unknown>): string {
  const m = body.messages
  if (Array.isArray(m)) {
    return m.map((msg) => {
      const c = (msg as { content?: unknown } | null)?.content
      if (typeof c === 'string') return c
      if (Array.isArray(c)) return c.map((p) => (typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join(' ')
      return ''
    }).join('\n')
  }
  const p = body.prompt ?? body.input
  if (typeof p === 'string') return p
  if (Array.isArray(p)) return p.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join('\n')
  return ''
}

/** A unit-length embedding, deterministic in the input. */
export function embedding (text: string, dims: number): number[] {
  let s = seedOf(text) || 1
  const v: number[] = []
  let norm = 0
  for (let i = 0; i < dims; i++) {
    // xorshift32
    s ^= s << 13; s >>>= 0
    s ^= s >>> 17
    s ^= s << 5; s >>>= 0
    const x = (s / 0xffffffff) * 2 - 1
    v.push(x)
    norm += x * x
  }
  const k = norm === 0 ? 1 : 1 / Math.sqrt(norm)
  return v.map((x) => Math.round(x * k * 1e6) / 1e6)
}
