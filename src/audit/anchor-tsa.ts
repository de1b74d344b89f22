import { randomBytes } from 'node:crypto'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

/**
 * RFC 3161 time-stamping of digests. The request is small enough to build by hand (DER, below) rather than pull
 * in an ASN.1 library; the reply is kept as the TSA sent it (a TimeStampResp) and checked with `openssl ts
 * -verify`, the reference implementation, rather than with a re-implementation of CMS signature checking here.
 *
 * TimeStampReq ::= SEQUENCE {
 *   version         INTEGER (1),
 *   messageImprint  SEQUENCE { hashAlgorithm AlgorithmIdentifier (sha-256, NULL), hashedMessage OCTET STRING },
 *   nonce           INTEGER (64 random bits, positive),
 *   certReq         BOOLEAN TRUE }   -- the TSA puts its certificate in the token, so verify needs only a pinned cert
 */

const SHA256_ALG = Buffer.from('300d06096086480165030402010500', 'hex')

function der (tag: number, body: Buffer): Buffer {
  const n = body.length
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff])
  return Buffer.concat([Buffer.from([tag]), len, body])
}

/** The DER TimeStampReq for a SHA-256 hash (32 bytes). */
export function timeStampRequest (sha256: Buffer, nonce: Buffer = randomBytes(8)): Buffer {
  if (sha256.length !== 32) throw new Error('timeStampRequest: a SHA-256 hash is 32 bytes')
  const n = Buffer.from(nonce)
  n[0] = ((n[0] ?? 1) & 0x7f) | 0x01 // positive, and no leading zero byte to strip (DER minimal encoding)
  return der(0x30, Buffer.concat([
    der(0x02, Buffer.from([1])),
    der(0x30, Buffer.concat([SHA256_ALG, der(0x04, sha256)])),
    der(0x02, n),
    Buffer.from([0x01, 0x01, 0xff])
  ]))
}

/** Header (tag, length) of the DER element at `off`: where its content starts and ends. */
function element (buf: Buffer, off: number): { tag: number, start: number, end: number } {
  const tag = buf[off]
  let len = buf[off + 1]
  if (tag === undefined || len === undefined) throw new Error('truncated DER')
  let start = off + 2
  if (len >= 0x80) {
    const k = len & 0x7f
    if (k < 1 || k > 4) throw new Error('bad DER length')
    len = 0
    for (let i = 0; i < k; i++) len = len * 256 + (buf[start + i] ?? 0)
    start += k
  }
  if (start + len > buf.length) throw new Error('truncated DER')
  return { tag, start, end: start + len }
}

/** PKIStatus of a TimeStampResp: 0 granted, 1 granted with modifications; anything else is a refusal. */
export function responseStatus (resp: Buffer): number {
  const outer = element(resp, 0)
  const statusInfo = element(resp, outer.start)
  const status = element(resp, statusInfo.start)
  if (outer.tag !== 0x30 || statusInfo.tag !== 0x30 || status.tag !== 0x02) throw new Error('not a TimeStampResp')
  return resp.readUIntBE(status.start, Math.min(6, status.end - status.start))
}

export interface TsaOptions { url: string, timeoutMs: number }

/** Ask the TSA to stamp a hash; the TimeStampResp DER, once it says granted. */
export async function requestTimestamp (o: TsaOptions, sha256: Buffer): Promise<Buffer> {
  const res = await fetch(o.url, {
    method: 'POST',
    headers: { 'content-type': 'application/timestamp-query', accept: 'application/timestamp-reply' },
    body: timeStampRequest(sha256),
    signal: AbortSignal.timeout(o.timeoutMs)
  })
  const body = Buffer.from(await res.arrayBuffer())
  if (!res.ok) throw new Error(`TSA ${o.url} answered HTTP ${res.status}`)
  const status = responseStatus(body)
  if (status !== 0 && status !== 1) throw new Error(`TSA ${o.url} refused the request (PKIStatus ${status})`)
  return body
}

const run = promisify(execFile)

/**
 * Check a stored reply against the hash it should stamp and the TSA's pinned certificate (or its CA), with
 * `openssl ts -verify`. -partial_chain lets the pinned certificate itself be the trust anchor.
 * Returns null when it holds, else why not.
 */
export async function verifyTimestamp (responseFile: string, sha256Hex: string, tsaCert: string, openssl = 'openssl'): Promise<string | null> {
  try {
    await run(openssl, ['ts', '-verify', '-digest', sha256Hex, '-in', responseFile, '-CAfile', tsaCert, '-untrusted', tsaCert, '-partial_chain'], { timeout: 30_000 })
    return null
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string, stdout?: string }
    if (e.code === 'ENOENT') throw new Error('verify --tsa-cert needs the openssl command (OpenSSL 1.1 or later) on the PATH', { cause: err })
    const text = `${e.stdout ?? ''}${e.stderr ?? ''}`.split('\n').map((l) => l.trim()).filter((l) => l !== '' && l !== 'Verification: FAILED')
    return text.slice(0, 3).join('; ') || 'openssl ts -verify failed'
  }
}
