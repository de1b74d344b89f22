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

/**
 * The lines of a file, streamed (segments can be hundreds of MB). `limit` reads only that many bytes: a snapshot
 * of a file another process is still appending to.
 */
export async function * readLines (path: string, limit?: number): AsyncGenerator<Line> {
  const stream = createReadStream(path, { highWaterMark: 1 << 20, ...(limit === undefined ? {} : { end: limit - 1 }) })
  let carry: Buffer | null = null
  let offset = 0
  let lineNo = 0
  if (limit === 0) return
  for await (const chunk of stream) {
    let buf = chunk as Buffer
    if (carry !== null) { buf = Buffer.concat([carry, buf]); carry = null }
    let start = 0
    for (;;) {
      const nl = buf.indexOf(0x0a, start)
      if (nl === -1) break
      lineNo++
      yield { text: buf.toString('utf8', start, nl), lineNo, offset, complete: true }
      offset += nl - start + 1
      start = nl + 1
    }
    if (start < buf.length) carry = buf.subarray(start)
  }
  if (carry !== null && carry.length > 0) {
    lineNo++
    yield { text: carry.toString('utf8'), lineNo, offset, complete: false }
  }
}
