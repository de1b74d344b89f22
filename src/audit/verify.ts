import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { lineSpans } from './lines.js'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { GENESIS, checkDigest, checkLine, publicKeyId, sha256, type Digest } from './chain.js'
import { DIGEST_DIR, TORN_DIR, listDigests, listPublicKeyFiles, listSegments, type SegmentName } from './segments.js'

/**
 * Check every chain in an audit directory:
 *  - each line's own hash; seq +1 and prev = previous hash across all of a writer's segments, from seq 1;
 *  - digests: signature (Ed25519), chain of digests (digestSeq +1, prevDigest), and that the bytes of each segment
 *    they cover still hash the same — which also catches a tail rewritten with a recomputed hash chain;
 *  - segments a digest names must exist, unless the chain itself records their deletion by retention.
 * The first problem found is reported with its file, line and seq.
 */

export interface VerifyProblem { file: string, line: number | null, seq: number | null, reason: string }

export interface VerifyResult {
  ok: boolean
  chains: number
  segments: number
  records: number
  digests: number
  signedDigests: number
  problem: VerifyProblem | null
  warnings: string[]
}

export interface VerifyOptions {
  /** trust only these public keys (PEM); signatures are then required. Default: the keys in digests/. */
  publicKeys?: string[]
  /** the directory is being written to: tolerate a last segment whose last line is still being written */
  live?: boolean
  onProgress?: (done: { segments: number, records: number, file: string }) => void
}

class Failure extends Error {
  readonly problem: VerifyProblem
  constructor (problem: VerifyProblem) { super(problem.reason); this.problem = problem }
}

interface DigestInfo { file: string, d: Digest }

interface Tally { segments: number, records: number, digests: number, signedDigests: number, warnings: string[] }

export async function verifyDir (dir: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const tally: Tally = { segments: 0, records: 0, digests: 0, signedDigests: 0, warnings: [] }
  const keys = new Map<string, KeyObject>()
  const pinned = opts.publicKeys !== undefined && opts.publicKeys.length > 0
  const pems = pinned ? (opts.publicKeys ?? []) : await Promise.all((await listPublicKeyFiles(dir)).map(async (f) => await readFile(f, 'utf8')))
  for (const pem of pems) {
    const k = createPublicKey(pem)
    keys.set(publicKeyId(k), k)
  }
  // Listed before the segments: a digest never covers bytes that are not yet in a file we then stat.
  const digests = await listDigests(dir)
  const segments = await listSegments(dir)
  const writers = [...new Set([...segments.keys(), ...digests.keys()])].sort()
  for (const f of await readdir(join(dir, TORN_DIR)).catch(() => [] as string[])) {
    tally.warnings.push(`${TORN_DIR}/${f}: a torn last line a writer moved aside when it recovered from a crash (recorded in its chain)`)
  }
  if (keys.size === 0) tally.warnings.push('no public key: digests are not signed, so a rewritten chain tail is caught only against unsigned digests')
  try {
    for (const writer of writers) {
      await verifyChain(dir, writer, segments.get(writer) ?? [], (digests.get(writer) ?? []).map((d) => d.file), keys, pinned || keys.size > 0, opts, tally)
    }
  } catch (err) {
    if (err instanceof Failure) return { ok: false, chains: writers.length, ...tally, problem: err.problem }
    throw err
  }
  return { ok: true, chains: writers.length, ...tally, problem: null }
}

async function verifyChain (
  dir: string, writer: string, segs: SegmentName[], digestFiles: string[], keys: ReadonlyMap<string, KeyObject>,
  requireSigned: boolean, opts: VerifyOptions, tally: Tally
): Promise<void> {
  // 1. The digests: signatures and their own chain. A failure here is reported after the records' own checks,
  //    so an edited record is named by its line rather than by the digest that covers it.
  const byDigestSegment = new Map<string, DigestInfo[]>()
  let digestFailure: VerifyProblem | null = null
  let prevDigest = GENESIS
  let expectDigestSeq = 1
  for (const file of digestFiles) {
    const rel = `${DIGEST_DIR}/${file}`
    const text = await readFile(join(dir, DIGEST_DIR, file), 'utf8')
    const c = checkDigest(text, keys, requireSigned)
    if (!c.ok) { digestFailure ??= { file: rel, line: null, seq: null, reason: c.reason }; break }
    const d = c.digest
    if (d.writer !== writer || d.digestSeq !== expectDigestSeq) {
      digestFailure ??= { file: rel, line: null, seq: null, reason: `digest ${expectDigestSeq} of writer ${writer} is missing or out of order (found ${d.writer} #${d.digestSeq})` }
      break
    }
    if (d.prevDigest !== prevDigest) { digestFailure ??= { file: rel, line: null, seq: null, reason: 'digest does not chain to the previous digest (prevDigest mismatch)' }; break }
    prevDigest = sha256(text)
    expectDigestSeq++
    tally.digests++
    if (d.signature !== null) tally.signedDigests++
    const list = byDigestSegment.get(d.segment) ?? []
    list.push({ file: rel, d })
    byDigestSegment.set(d.segment, list)
  }

  // 2. The records, segment by segment, with the digests' byte ranges checked as the bytes stream past.
  let seq = 0
  let prev = GENESIS
  const retained = new Map<string, Record<string, unknown>>()
  const present = new Set(segs.map((s) => s.file))
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i] as SegmentName
    const last = i === segs.length - 1
    if (i === 0 && seg.firstSeq !== 1) {
      // Older segments deleted by retention: a digest must vouch for where the remaining chain picks up.
      const vouch = [...byDigestSegment.values()].flat().find((x) => x.d.final && x.d.lastSeq === seg.firstSeq - 1 && !present.has(x.d.segment))
      if (vouch === undefined) throw new Failure({ file: seg.file, line: 1, seq: seg.firstSeq, reason: `chain of writer ${writer} starts at seq ${seg.firstSeq}: records 1..${seg.firstSeq - 1} are missing` })
      seq = vouch.d.lastSeq
      prev = vouch.d.lastHash
    }
    const r = await verifySegment(dir, seg, seq, prev, byDigestSegment.get(seg.file) ?? [], last && opts.live === true, retained)
    seq = r.seq
    prev = r.prev
    tally.segments++
    tally.records += r.records
    opts.onProgress?.({ segments: tally.segments, records: tally.records, file: seg.file })
  }
  if (digestFailure !== null) throw new Failure(digestFailure)

  // 3. Every segment a digest names is here, or its deletion is on the record.
  for (const [segment, list] of byDigestSegment) {
    if (present.has(segment)) continue
    const final = list.find((x) => x.d.final)
    const del = retained.get(segment)
    if (del === undefined || final === undefined || del.sha256 !== final.d.sha256) {
      const d = (final ?? list[list.length - 1]) as DigestInfo
      throw new Failure({ file: segment, line: null, seq: d.d.firstSeq, reason: `segment is missing (named by ${d.file}, seq ${d.d.firstSeq}..${d.d.lastSeq}) and no retention record explains it` })
    }
  }
}

interface SegmentResult { seq: number, prev: string, records: number }

async function verifySegment (
  dir: string, seg: SegmentName, seqIn: number, prevIn: string, digests: DigestInfo[], live: boolean,
  retained: Map<string, Record<string, unknown>>
): Promise<SegmentResult> {
  const path = join(dir, seg.file)
  const size = (await stat(path)).size
  const fail = (line: number | null, seq: number | null, reason: string): never => { throw new Failure({ file: seg.file, line, seq, reason }) }
  // Byte offsets at which a digest wants the running hash.
  const checkpoints = new Map<number, DigestInfo[]>()
  for (const x of digests) {
    const l = checkpoints.get(x.d.bytes) ?? []
    l.push(x)
    checkpoints.set(x.d.bytes, l)
  }
  const hasher = createHash('sha256')
  let seq = seqIn
  let prev = prevIn
  let records = 0
  let offset = 0
  let lineNo = 0
  const atOffset = (): void => {
    const due = checkpoints.get(offset)
    if (due === undefined) return
    const h = hasher.copy().digest('hex')
    for (const x of due) {
      if (h !== x.d.sha256) fail(null, x.d.lastSeq, `bytes 0..${x.d.bytes} do not match the hash in ${x.file} (records ${x.d.firstSeq}..${x.d.lastSeq} were altered)`)
      if (x.d.lastSeq !== seq || x.d.lastHash !== prev) fail(lineNo, seq, `chain position does not match ${x.file}`)
    }
    checkpoints.delete(offset)
  }
  const onLine = (buf: Buffer, start: number, end: number): void => {
    lineNo++
    const text = buf.toString('utf8', start, end)
    const c = checkLine(text)
    if (!c.ok) fail(lineNo, c.record?.seq ?? null, c.reason)
    if (!c.ok) return
    const r = c.record
    if (r.writer !== seg.writer) fail(lineNo, r.seq, `record of writer ${r.writer} in a segment of writer ${seg.writer}`)
    if (r.seq !== seq + 1) {
      const why = r.seq > seq + 1 ? `records ${seq + 1}..${r.seq - 1} are missing` : 'record out of order or repeated'
      fail(lineNo, r.seq, `expected seq ${seq + 1}, found ${r.seq}: ${why}`)
    }
    if (r.prev !== prev) fail(lineNo, r.seq, 'prev does not match the previous record\'s hash (a record was removed, inserted or reordered)')
    if (lineNo === 1 && r.seq !== seg.firstSeq) fail(lineNo, r.seq, `segment name says it starts at seq ${seg.firstSeq}`)
    if (r.kind === 'system' && r.event === 'retention-delete' && typeof r.detail.segment === 'string') retained.set(r.detail.segment, r.detail)
    seq = r.seq
    prev = r.hash
    records++
  }
  atOffset()
  let torn = false
  for await (const l of lineSpans(path, size)) {
    if (!l.complete) { torn = true; break } // bytes past the last newline
    onLine(l.buf, l.start, l.end)
    hasher.update(l.buf.subarray(l.start, l.end + 1))
    offset += l.end + 1 - l.start
    atOffset()
  }
  if (torn && !live) fail(lineNo + 1, null, 'last line is incomplete (torn write; the writer recovers it on its next start)')
  if (records === 0 && !live) fail(null, null, 'segment holds no records')
  // Checked after the lines, so that an edited or deleted record is named by its line rather than by a digest.
  for (const x of digests) {
    if (x.d.bytes > size) fail(null, x.d.lastSeq, `segment is shorter (${size} bytes) than ${x.file} covers (${x.d.bytes} bytes): records deleted`)
    if (x.d.final && x.d.bytes !== size) fail(null, x.d.lastSeq, `segment is longer (${size} bytes) than its final digest ${x.file} (${x.d.bytes} bytes): records added`)
  }
  for (const [, due] of checkpoints) {
    const x = due[0] as DigestInfo
    fail(null, x.d.lastSeq, `${x.file} covers ${x.d.bytes} bytes, which does not end on a record boundary: the segment was altered`)
  }
  return { seq, prev, records }
}
