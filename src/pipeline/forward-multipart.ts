const CRLF = Buffer.from('\r\n')
const HEADERS_END = Buffer.from('\r\n\r\n')
const MODEL_FIELD = /^content-disposition:[^\r\n]*;\s*name\s*=\s*(?:"model"|model)\s*(?:;|\r|$)/im
/** A part header block or a model name longer than this is not what we look for. */
const MAX_HEADERS = 8 * 1024
const MAX_VALUE = 1024

/** The boundary of a multipart/form-data Content-Type (RFC 7578), or null. */
export function multipartBoundary (contentType: string | undefined): string | null {
  if (contentType === undefined || !/^multipart\/form-data\b/i.test(contentType)) return null
  const m = /;\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType)
  return m?.[1] ?? m?.[2] ?? null
}

/**
 * Finds the `model` field of a multipart/form-data body as its bytes go by (RFC 2046 §5.1.1 delimiters), so an
 * upload can be routed like a JSON request without parsing or altering it. SDKs and curl usually send the file
 * before the model, so the scan may run through the whole body; it holds only a delimiter's length of it.
 */
export class ModelFieldScanner {
  readonly #delimiter: Buffer
  // A virtual CRLF first: the opening delimiter may start the body, every later one follows a CRLF.
  #window: Buffer = CRLF
  #state: 'delimiter' | 'headers' | 'value' = 'delimiter'
  done = false
  model: string | null = null

  constructor (boundary: string) {
    this.#delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1')
  }

  push (chunk: Buffer): void {
    if (this.done) return
    let w = this.#window.length === 0 ? chunk : Buffer.concat([this.#window, chunk])
    for (;;) {
      if (this.#state === 'delimiter') {
        const i = w.indexOf(this.#delimiter)
        if (i === -1) { this.#window = Buffer.from(w.subarray(Math.max(0, w.length - this.#delimiter.length))); return }
        const rest = w.subarray(i + this.#delimiter.length)
        if (rest.length < 2) { this.#window = Buffer.from(w.subarray(i)); return }
        if (rest[0] === 0x2d && rest[1] === 0x2d) { this.done = true; return } // close delimiter: no model field
        const eol = rest.indexOf(CRLF) // transport padding may follow the boundary
        if (eol === -1) { this.#window = Buffer.from(w.subarray(i)); return }
        w = rest.subarray(eol)
        this.#state = 'headers'
      }
      if (this.#state === 'headers') {
        // w starts at the CRLF ending the delimiter line: headers run to the blank line
        const e = w.indexOf(HEADERS_END)
        if (e === -1) {
          if (w.length > MAX_HEADERS) { this.done = true; return }
          this.#window = Buffer.from(w); return
        }
        const headers = w.subarray(2, e).toString('latin1')
        w = w.subarray(e + 4)
        // w now starts with the part's content; an empty part's next delimiter is right here
        this.#state = MODEL_FIELD.test(headers) ? 'value' : 'delimiter'
        if (this.#state === 'delimiter') continue
      }
      const v = w.indexOf(this.#delimiter)
      if (v === -1) {
        if (w.length > MAX_VALUE + this.#delimiter.length) { this.done = true; return }
        this.#window = Buffer.from(w); return
      }
      this.model = w.subarray(0, v).toString('utf8').trim()
      this.done = true
      return
    }
  }
}
