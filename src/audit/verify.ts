import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { lineSpans } from './lines.js'
import { open, readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { GENESIS, checkDigest, checkLine, publicKeyId, sha256, type Digest } from './chain.js'
import { checkLineFast } from './line-fast.js'
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

/** What an auditor wants to know of each writer (replica) whose chain is in the directory. */
export interface WriterSummary {
  writer: string
  records: number
  segments: number
  firstSeq: number | null
  lastSeq: number | null
  firstTs: string | null
  lastTs: string | null
  /** the newest digest of this writer (checked), or null */
  lastDigest: { file: string, digestSeq: number, ts: string, lastSeq: number, final: boolean, signed: boolean, timestamped: boolean } | null
  /**
   * sealed: a final digest covers the chain to its last record (the writer closed cleanly);
   * covered: a digest covers the last record, the segment is still open (a live writer);
   * uncovered: records after the newest digest, or no digest: the chain stops without a closing digest
   * (a crash not yet recovered, a writer still inside its digest interval, or a tail cut off with its digests)
   */
  tail: 'sealed' | 'covered' | 'uncovered' | 'empty'
}

export interface VerifyResult {
  ok: boolean
  /** every digest is signed (and there is at least one) */
  signed: boolean
  writers: WriterSummary[]
  chains: number
  segments: number
  records: number
  digests: number
  signedDigests: number
  problem: VerifyProblem | null
  /** the writer whose chain holds the problem */
  failedWriter: string | null
  warnings: string[]
}

export interface VerifyOptions {
  /** trust only these public keys (PEM); signatures are then required. Default: the keys in digests/. */
  publicKeys?: string[]
  /** the directory is being written to: tolerate a last segment whose last line is still being written */
  live?: boolean
  onProgress?: (done: { segments: number, records: number, file: string }) => void
  /** verify only these writers' chains (verify-parallel.ts splits a directory between threads) */
  onlyWriters?: string[]
  /** does this digest (digests/<file>) have a checked timestamp token? (anchor.ts) */
  timestamped?: (digestFile: string) => boolean
}

class Failure extends Error {
  readonly problem: VerifyProblem
  constructor (problem: VerifyProblem) { super(problem.reason); this.problem = problem }
}

interface DigestInfo { file: string, d: Digest }

interface Tally { segments: number, records: number, digests: number, signedDigests: number, warnings: string[], writers: WriterSummary[] }

export async function verifyDir (dir: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const tally: Tally = { segments: 0, records: 0, digests: 0, signedDigests: 0, warnings: [], writers: [] }
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
  const all = [...new Set([...segments.keys(), ...digests.keys()])].sort()
  const only = opts.onlyWriters === undefined ? null : new Set(opts.onlyWriters)
  const writers = only === null ? all : all.filter((w) => only.has(w))
  let current: string | null = null
  for (const f of await readdir(join(dir, TORN_DIR)).catch(() => [] as string[])) {
    tally.warnings.push(`${TORN_DIR}/${f}: a torn last line a writer moved aside when it recovered from a crash (recorded in its chain)`)
  }
  try {
    for (const writer of writers) {
      current = writer
      await verifyChain(dir, writer, segments.get(writer) ?? [], (digests.get(writer) ?? []).map((d) => d.file), keys, pinned || keys.size > 0, opts, tally)
    }
  } catch (err) {
    if (err instanceof Failure) return { ok: false, signed: false, chains: writers.length, ...tally, problem: err.problem, failedWriter: current }
    throw err
  }
  const signed = tally.digests > 0 && tally.signedDigests === tally.digests
  if (tally.digests > tally.signedDigests) tally.warnings.push(`UNSIGNED: ${tally.digests - tally.signedDigests} of ${tally.digests} digest(s) carry no signature, so whoever can write these files can rebuild the chain and its digests`)
  for (const w of tally.writers) {
    if (w.tail === 'uncovered') tally.warnings.push(`writer ${w.writer}: the chain stops at seq ${String(w.lastSeq)} (${String(w.lastTs)}) without a closing digest` + (w.lastDigest === null ? ' (no digest at all)' : ` (newest digest ${w.lastDigest.file} covers up to seq ${w.lastDigest.lastSeq})`))
  }
  return { ok: true, signed, chains: writers.length, ...tally, problem: null, failedWriter: null }
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
  let firstTs: string | null = null
  let lastTs: string | null = null
  let firstSeq: number | null = null
  let records = 0
  const retained = new Map<string, Record<string, unknown>>()
  const present = new Set(segs.map((s) => s.file))
  // The next segment is read while this one is checked: over thousands of small files, verify otherwise spends
  // most of its time waiting on open/stat/read one file at a time.
  let next: Promise<Preloaded> | null = segs[0] === undefined ? null : preload(dir, segs[0])
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i] as SegmentName
    const last = i === segs.length - 1
    const loaded = await (next ?? preload(dir, seg))
    const following = segs[i + 1]
    next = following === undefined ? null : preload(dir, following)
    next?.catch(() => {}) // a failure is met (and thrown) when its turn comes
    if (i === 0 && seg.firstSeq !== 1) {
      // Older segments deleted by retention: a digest must vouch for where the remaining chain picks up.
      const vouch = [...byDigestSegment.values()].flat().find((x) => x.d.final && x.d.lastSeq === seg.firstSeq - 1 && !present.has(x.d.segment))
      if (vouch === undefined) throw new Failure({ file: seg.file, line: 1, seq: seg.firstSeq, reason: `chain of writer ${writer} starts at seq ${seg.firstSeq}: records 1..${seg.firstSeq - 1} are missing` })
      seq = vouch.d.lastSeq
      prev = vouch.d.lastHash
    }
    const r = await verifySegment(dir, seg, seq, prev, byDigestSegment.get(seg.file) ?? [], last && opts.live === true, retained, loaded)
    seq = r.seq
    prev = r.prev
    firstTs ??= r.firstTs
    if (r.lastTs !== null) lastTs = r.lastTs
    firstSeq ??= r.firstSeq
    records += r.records
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

  // 4. The writer's summary: how far its digests vouch for its chain.
  const newest = [...byDigestSegment.values()].flat().sort((a, b) => a.d.digestSeq - b.d.digestSeq).at(-1)
  const tail: WriterSummary['tail'] = records === 0
    ? 'empty'
    : newest === undefined || newest.d.lastSeq < seq ? 'uncovered' : newest.d.final ? 'sealed' : 'covered'
  tally.writers.push({
    writer,
    records,
    segments: segs.length,
    firstSeq,
    lastSeq: records === 0 ? null : seq,
    firstTs,
    lastTs,
    lastDigest: newest === undefined
      ? null
      : { file: newest.file, digestSeq: newest.d.digestSeq, ts: newest.d.ts, lastSeq: newest.d.lastSeq, final: newest.d.final, signed: newest.d.signature !== null, timestamped: opts.timestamped?.(newest.file) ?? false },
    tail
  })
}

/** A segment's size, and its bytes when small enough to read whole (else it is streamed). */
interface Preloaded { size: number, bytes: Buffer | null }

const PRELOAD_MAX = 32 * 1024 * 1024

async function preload (dir: string, seg: SegmentName): Promise<Preloaded> {
  const path = join(dir, seg.file)
  const size = (await stat(path)).size
  if (size > PRELOAD_MAX) return { size, bytes: null }
  const fh = await open(path, 'r')
  try {
    // Exactly the bytes present at stat time: a live writer may be appending behind us.
    const bytes = Buffer.allocUnsafe(size)
    let got = 0
    while (got < size) {
      const { bytesRead } = await fh.read(bytes, got, size - got, got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    return { size: got, bytes: got === size ? bytes : bytes.subarray(0, got) }
  } finally { await fh.close() }
}

interface SegmentResult { seq: number, prev: string, records: number, firstSeq: number | null, firstTs: string | null, lastTs: string | null }

async function verifySegment (
  dir: string, seg: SegmentName, seqIn: number, prevIn: string, digests: DigestInfo[], live: boolean,
  retained: Map<string, Record<string, unknown>>, loaded: Preloaded
): Promise<SegmentResult> {
  const path = join(dir, seg.file)
  const size = loaded.size
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
  let firstTs: string | null = null
  let lastTs: string | null = null
  let firstSeq: number | null = null
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
    let r: { writer: string, seq: number, prev: string, hash: string, ts?: unknown }
    const fast = checkLineFast(buf, start, end)
    if (fast !== null) r = fast
    else {
      const c = checkLine(buf.toString('utf8', start, end))
      if (!c.ok) fail(lineNo, c.record?.seq ?? null, c.reason)
      if (!c.ok) return
      r = c.record
      if (c.record.kind === 'system' && c.record.event === 'retention-delete' && typeof c.record.detail.segment === 'string') retained.set(c.record.detail.segment, c.record.detail)
    }
    if (r.writer !== seg.writer) fail(lineNo, r.seq, `record of writer ${r.writer} in a segment of writer ${seg.writer}`)
    if (r.seq !== seq + 1) {
      const why = r.seq > seq + 1 ? `records ${seq + 1}..${r.seq - 1} are missing` : 'record out of order or repeated'
      fail(lineNo, r.seq, `expected seq ${seq + 1}, found ${r.seq}: ${why}`)
    }
    if (r.prev !== prev) fail(lineNo, r.seq, 'prev does not match the previous record\'s hash (a record was removed, inserted or reordered)')
    if (lineNo === 1 && r.seq !== seg.firstSeq) fail(lineNo, r.seq, `segment name says it starts at seq ${seg.firstSeq}`)
    seq = r.seq
    prev = r.hash
    records++
    firstSeq ??= r.seq
    if (typeof r.ts === 'string') { firstTs ??= r.ts; lastTs = r.ts }
  }
  atOffset()
  let torn = false
  if (loaded.bytes !== null) {
    // Whole file in memory: lines found synchronously; bytes hashed only as far as a digest still needs them.
    const buf = loaded.bytes
    let start = 0
    for (;;) {
      const nl = buf.indexOf(0x0a, start)
      if (nl === -1) { torn = start < buf.length; break }
      onLine(buf, start, nl)
      offset = nl + 1
      if (checkpoints.size > 0) { hasher.update(buf.subarray(start, nl + 1)); atOffset() }
      start = nl + 1
    }
  } else {
    for await (const l of lineSpans(path, size)) {
      if (!l.complete) { torn = true; break } // bytes past the last newline
      onLine(l.buf, l.start, l.end)
      hasher.update(l.buf.subarray(l.start, l.end + 1))
      offset += l.end + 1 - l.start
      atOffset()
    }
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
  return { seq, prev, records, firstSeq, firstTs, lastTs }
}
