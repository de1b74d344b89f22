import { createReadStream } from 'node:fs'

export interface Line {
  text: string
  /** 1-based */
  lineNo: number
  /** byte offset of the line's first byte */
  offset: number
  /** false for trailing bytes with no newline after them */
  complete: boolean
}

/** One line's bytes: buf[start, end) holds the line without its newline; `complete` false for trailing bytes. */
export interface LineSpan { buf: Buffer, start: number, end: number, complete: boolean }

/**
 * The lines of a file as byte spans, streamed in 1 MiB chunks (segments can be hundreds of MB): the one splitter
 * under every reader of JSONL files. `limit` reads only that many bytes: a snapshot of a file another process is
 * still appending to.
 */
export async function * lineSpans (path: string, limit?: number): AsyncGenerator<LineSpan> {
  if (limit === 0) return
  const stream = createReadStream(path, { highWaterMark: 1 << 20, ...(limit === undefined ? {} : { end: limit - 1 }) })
  let carry: Buffer | null = null
  for await (const chunk of stream) {
    let buf = chunk as Buffer
    if (carry !== null) { buf = Buffer.concat([carry, buf]); carry = null }
    let start = 0
    for (;;) {
      const nl = buf.indexOf(0x0a, start)
      if (nl === -1) break
      yield { buf, start, end: nl, complete: true }
      start = nl + 1
    }
    if (start < buf.length) carry = buf.subarray(start)
  }
  if (carry !== null && carry.length > 0) yield { buf: carry, start: 0, end: carry.length, complete: false }
}

/** The lines of a file as text, with their numbers and byte offsets. */
export async function * readLines (path: string, limit?: number): AsyncGenerator<Line> {
  let offset = 0
  let lineNo = 0
  for await (const l of lineSpans(path, limit)) {
    lineNo++
    yield { text: l.buf.toString('utf8', l.start, l.end), lineNo, offset, complete: l.complete }
    offset += l.end - l.start + (l.complete ? 1 : 0)
  }
}

/** The JSON objects of a small JSONL file (a manifest, a journal); a torn or unparsable line is skipped. */
export async function readJsonLines<T> (path: string): Promise<T[]> {
  const out: T[] = []
  try {
    for await (const l of readLines(path)) {
      if (l.text === '') continue
      try { out.push(JSON.parse(l.text) as T) } catch { /* a torn line: it was never durable */ }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out
    throw err
  }
  return out
}
