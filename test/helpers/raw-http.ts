import { connect } from 'node:net'

export interface RawResponse { status: number, head: string, body: string }

/**
 * One HTTP/1.1 request written byte for byte on a socket: no client library normalises the request target or
 * merges header lines, so tests see what a hostile client can really send.
 */
export async function rawRequest (port: number, target: string, headers: Array<[string, string]>, body = '', method = 'POST'): Promise<RawResponse> {
  const lines = [`${method} ${target} HTTP/1.1`, 'host: 127.0.0.1', 'connection: close']
  for (const [k, v] of headers) lines.push(`${k}: ${v}`)
  if (body !== '') lines.push('content-type: application/json', `content-length: ${Buffer.byteLength(body)}`)
  const text = lines.join('\r\n') + '\r\n\r\n' + body
  return await new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    // write, not end: a half-closed socket is dropped before an asynchronous answer; `connection: close` ends it
    const s = connect(port, '127.0.0.1', () => { s.write(text) })
    s.on('data', (c: Buffer) => chunks.push(c))
    s.on('error', reject)
    s.on('close', () => {
      const all = Buffer.concat(chunks).toString('utf8')
      const split = all.indexOf('\r\n\r\n')
      const head = split === -1 ? all : all.slice(0, split)
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
      resolve({ status, head, body: split === -1 ? '' : all.slice(split + 4) })
    })
  })
}
