/**
 * The UTF-8 length of JSON.stringify(v), without building the string: for the prompt estimate, which is a body's
 * prompt fields in bytes (policy/endpoint.ts). Serialising a 16 KB conversation to measure it took 31 µs, walking it
 * 12 µs; 329 against 91 at 128 KB.
 *
 * For what JSON.parse makes (plain objects and arrays of strings, finite numbers, booleans, null) the answer is
 * exact; for anything else (a class instance, toJSON, undefined, a bigint) it is null and the caller serialises.
 */

/** a character JSON.stringify escapes (quote, backslash, control), or half of a surrogate pair (maybe lone) */
const SPECIAL = /["\\\u0000-\u001f\ud800-\udfff]/

export function jsonByteLength (v: unknown): number | null {
  if (v === null) return 4
  switch (typeof v) {
    case 'string': return stringLength(v)
    case 'number': return Number.isFinite(v) ? String(v).length : 4 // non-finite numbers are written null
    case 'boolean': return v ? 4 : 5
    case 'object': {
      if (Array.isArray(v)) {
        let n = v.length > 0 ? 1 + v.length : 2 // brackets and the commas between
        for (const x of v) {
          const l = jsonByteLength(x)
          if (l === null) return null
          n += l
        }
        return n
      }
      if (Object.getPrototypeOf(v) !== Object.prototype) return null
      const o = v as Record<string, unknown>
      if ('toJSON' in o) return null
      let n = 2
      let members = 0
      for (const key in o) {
        if (!Object.hasOwn(o, key)) continue
        const l = jsonByteLength(o[key])
        if (l === null) return null
        n += stringLength(key) + 1 + l
        members++
      }
      return members > 0 ? n + members - 1 : n
    }
    default: return null
  }
}

function stringLength (s: string): number {
  if (!SPECIAL.test(s)) return Buffer.byteLength(s, 'utf8') + 2
  let n = 2
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) {
      // \" \\ \b \t \n \f \r are two bytes; other controls \u00XX six
      if (c === 34 || c === 92 || c === 8 || c === 9 || c === 10 || c === 12 || c === 13) n += 2
      else n += c < 0x20 ? 6 : 1
    } else if (c < 0x800) {
      n += 2
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) { n += 4; i++ } else n += 6 // a pair is one 4-byte character; a lone half \uDXXX
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      n += 6
    } else {
      n += 3
    }
  }
  return n
}
