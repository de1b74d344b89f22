/*
 * Audio and image uploads are multipart/form-data (RFC 7578), and their `model` is a form field, usually after
 * the file. The policy must decide on that model, and the backend must get the same bytes, so the body is read
 * once (bounded by server.bodyLimit), its text fields are parsed, and exactly those bytes are forwarded.
 * Anything a backend's parser might read differently from ours is refused (400): no boundary, a duplicated
 * field, RFC 5987 `name*=` names, a missing closing delimiter.
 */
import { Readable } from 'node:stream'
import { BadRequestError, BodyTooLargeError } from '../core/errors.js'
import { FormFields } from '../core/form-fields.js'
export { FormFields }

const BOUNDARY = /;\s*boundary=(?:"([^"]{1,70})"|([0-9A-Za-z'()+_,./:=?-]{1,70}))\s*(?:;|$)/i
const NAME = /;\s*name="([^"]*)"|;\s*name=([^\s;"]+)/i

export function isMultipart (contentType: string | undefined): boolean {
  return typeof contentType === 'string' && contentType.trimStart().toLowerCase().startsWith('multipart/form-data')
}

function malformed (why: string): never {
  throw new BadRequestError(`Malformed multipart/form-data body: ${why}`)
}

/** Parse a complete multipart/form-data body. */
export function parseForm (contentType: string, bytes: Buffer): FormFields {
  const m = BOUNDARY.exec(contentType)
  const boundary = m?.[1] ?? m?.[2]
  if (boundary === undefined) malformed('no boundary')
  const delim = Buffer.from(`--${boundary}`)
  const fields = new Map<string, string[]>()
  let at = bytes.indexOf(delim)
  if (at === -1) malformed('no part')
  for (;;) {
    const after = at + delim.length
    if (bytes.subarray(after, after + 2).toString('latin1') === '--') break // closing delimiter
    if (bytes.subarray(after, after + 2).toString('latin1') !== '\r\n') malformed('delimiter not followed by CRLF')
    const headEnd = bytes.indexOf('\r\n\r\n', after + 2)
    if (headEnd === -1) malformed('part without headers')
    const next = bytes.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), headEnd + 4)
    if (next === -1) malformed('no closing delimiter')
    const head = bytes.subarray(after + 2, headEnd).toString('latin1').split('\r\n')
    let disposition: string | null = null
    for (const line of head) {
      const colon = line.indexOf(':')
      if (colon !== -1 && line.slice(0, colon).trim().toLowerCase() === 'content-disposition') {
        if (disposition !== null) malformed('two Content-Disposition headers')
        disposition = line.slice(colon + 1)
      }
    }
    if (disposition === null) malformed('part without Content-Disposition')
    if (/;\s*(name|filename)\*\s*=/i.test(disposition)) malformed('extended (name*=) parameters are not accepted')
    const name = NAME.exec(disposition)
    if (name === null) malformed('part without a name')
    const isFile = /;\s*filename\s*=/i.test(disposition)
    if (!isFile) {
      const key = name[1] ?? name[2] ?? ''
      const list = fields.get(key) ?? []
      list.push(bytes.subarray(headEnd + 4, next).toString('utf8'))
      fields.set(key, list)
    }
    at = next + 2
  }
  return new FormFields(fields, bytes)
}

/** Read the whole stream (never more than `limit` bytes: 413) and parse it. */
export async function readForm (body: Readable, contentType: string, limit: number): Promise<FormFields> {
  const bytes = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size <= limit) { chunks.push(chunk); return }
      // stop keeping it, but let the rest drain: destroying the request would take the 413 answer with it
      body.off('data', onData)
      body.resume()
      reject(new BodyTooLargeError(limit))
    }
    body.on('data', onData)
    body.once('end', () => { resolve(Buffer.concat(chunks)) })
    body.once('error', reject)
  })
  return parseForm(contentType, bytes)
}
