/**
 * Signed digests of one writer's segments, chained (each holds the SHA-256 of the previous digest): one when a
 * segment is closed (`final`), and periodically for the open one. Written aside and renamed into place.
 */
import type { Hash } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { GENESIS, sealDigest, sha256, type Signer } from './chain.js'
import { DIGEST_DIR, digestFile, listDigests } from './segments.js'
import { fsyncDir } from './files.js'

/** What a digest covers: a segment's bytes so far and its chain range. */
export interface DigestSubject {
  name: string
  bytes: number
  hasher: Hash
  firstSeq: number
  lastSeq: number
  lastHash: string
  records: number
  digestedBytes: number
}

export interface FinalDigest { segment: string, final: boolean, sha256: string, firstSeq: number, lastSeq: number, lastHash: string, records: number, bytes: number }

export class DigestChain {
  #digestSeq = 0
  #prevDigest = GENESIS
  /** the newest digest as written, null when none */
  last: FinalDigest | null = null

  /** onDigest: a digest file is in place (digests/<file>); anchoring (time-stamp, witnesses) takes it from there */
  constructor (readonly dir: string, readonly writer: string, readonly signer: Signer | null, readonly onDigest?: (file: string, text: string) => void) {}

  /** Pick up the chain of digests a previous run left. */
  async load (): Promise<void> {
    const lastDigest = ((await listDigests(this.dir)).get(this.writer) ?? []).at(-1)
    if (lastDigest === undefined) return
    const text = await readFile(join(this.dir, DIGEST_DIR, lastDigest.file), 'utf8')
    this.#digestSeq = lastDigest.digestSeq
    this.#prevDigest = sha256(text)
    this.last = JSON.parse(text) as FinalDigest
  }

  async write (seg: DigestSubject, final: boolean): Promise<void> {
    const digestSeq = this.#digestSeq + 1
    const text = sealDigest({
      kind: 'digest',
      version: 1,
      writer: this.writer,
      digestSeq,
      ts: new Date().toISOString(),
      segment: seg.name,
      bytes: seg.bytes,
      sha256: seg.hasher.copy().digest('hex'),
      firstSeq: seg.firstSeq,
      lastSeq: seg.lastSeq,
      lastHash: seg.lastHash,
      records: seg.records,
      final,
      prevDigest: this.#prevDigest
    }, this.signer)
    const ddir = join(this.dir, DIGEST_DIR)
    // Written aside and renamed into place, so a reader (a live verify, a shipper to WORM storage) never sees half.
    const name = digestFile(this.writer, digestSeq)
    const tmp = join(ddir, `.${name}.tmp`)
    await writeFile(tmp, text, { flag: 'w', flush: true })
    await rename(tmp, join(ddir, name))
    await fsyncDir(ddir)
    this.onDigest?.(name, text)
    this.#digestSeq = digestSeq
    this.#prevDigest = sha256(text)
    this.last = JSON.parse(text) as FinalDigest
    seg.digestedBytes = seg.bytes
  }
}

/** The final digest of each of a writer's segments, by segment file name. */
export async function finalDigests (dir: string, writer: string): Promise<Map<string, FinalDigest>> {
  const out = new Map<string, FinalDigest>()
  for (const d of (await listDigests(dir)).get(writer) ?? []) {
    const j = JSON.parse(await readFile(join(dir, DIGEST_DIR, d.file), 'utf8')) as FinalDigest
    if (j.final) out.set(j.segment, j)
  }
  return out
}
