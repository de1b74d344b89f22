/**
 * Recovery of a writer's chain after an unclean stop: a torn last line (a write cut short) is moved to torn/ and
 * cut off, a segment left empty is dropped, the chain's tip (last seq and hash) is found, and the previous run's
 * last segment is sealed with a final digest unless one already covers all of it.
 */
import { mkdir, open, stat, truncate, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { checkLine, sha256 } from './chain.js'
import { TORN_DIR, listSegments, type SegmentName } from './segments.js'
import { hashFile } from './files.js'
import type { DigestChain } from './digests.js'
import type { SystemFields } from './types.js'

export interface ChainTip { seq: number, hash: string }

export interface RecoveredChain {
  tip: ChainTip | null
  /** the writer's segments, oldest first, as left after recovery */
  segments: SegmentName[]
  /** torn-tail events to record in the chain */
  events: SystemFields[]
}

export async function recoverChain (dir: string, writer: string, digests: DigestChain): Promise<RecoveredChain> {
  const events: SystemFields[] = []
  const segments = (await listSegments(dir)).get(writer) ?? []
  let tip: ChainTip | null = null
  while (segments.length > 0 && tip === null) {
    const last = segments[segments.length - 1] as SegmentName
    const path = join(dir, last.file)
    const torn = await cutTornTail(dir, path)
    if (torn !== null) events.push({ kind: 'system', ts: new Date().toISOString(), event: 'torn-tail', detail: { segment: last.file, ...torn } })
    tip = await lastRecord(path)
    if (tip === null) {
      await unlink(path)
      segments.pop()
    }
  }
  const last = segments.at(-1)
  if (tip !== null && last !== undefined) {
    const size = (await stat(join(dir, last.file))).size
    const d = digests.last
    if (d === null || d.segment !== last.file || !d.final || d.bytes !== size) {
      const hasher = await hashFile(join(dir, last.file))
      const records = tip.seq - last.firstSeq + 1
      await digests.write({ name: last.file, bytes: size, hasher, firstSeq: last.firstSeq, lastSeq: tip.seq, lastHash: tip.hash, records, digestedBytes: 0 }, true)
    }
  }
  return { tip, segments, events }
}

/** Bytes after the last newline of a segment: a write cut short by a crash. Moved to torn/ and cut off. */
async function cutTornTail (dir: string, path: string): Promise<{ offset: number, bytes: number, sha256: string, movedTo: string } | null> {
  const size = (await stat(path)).size
  if (size === 0) return null
  const fh = await open(path, 'r')
  let offset = -1
  let tail: Buffer
  try {
    let end = size
    const chunks: Buffer[] = []
    while (end > 0 && offset === -1) {
      const start = Math.max(0, end - 65536)
      const buf = Buffer.alloc(end - start)
      await fh.read(buf, 0, buf.length, start)
      const nl = buf.lastIndexOf(0x0a)
      if (nl !== -1) offset = start + nl + 1
      chunks.unshift(nl === -1 ? buf : buf.subarray(nl + 1))
      end = start
    }
    if (offset === -1) offset = 0
    tail = Buffer.concat(chunks)
  } finally { await fh.close() }
  if (offset === size) return null
  const name = path.slice(path.lastIndexOf('/') + 1)
  const movedTo = join(TORN_DIR, `${name}.${offset}.torn`)
  await mkdir(join(dir, TORN_DIR), { recursive: true })
  await writeFile(join(dir, movedTo), tail, { flush: true })
  await truncate(path, offset)
  return { offset, bytes: tail.length, sha256: sha256(tail), movedTo }
}

/** Seq and hash of a segment's last line; null when it holds none. Throws when that line is not a sound record. */
export async function lastRecord (path: string): Promise<ChainTip | null> {
  const size = (await stat(path)).size
  if (size === 0) return null
  const fh = await open(path, 'r')
  try {
    let len = Math.min(size, 65536)
    for (;;) {
      const buf = Buffer.alloc(len)
      await fh.read(buf, 0, len, size - len)
      const text = buf.toString('utf8', 0, buf.length - 1)
      const nl = text.lastIndexOf('\n')
      if (nl !== -1 || len === size) {
        const line = text.slice(nl + 1)
        const c = checkLine(line)
        if (!c.ok) throw new Error(`audit: the last record of ${path} is damaged (${c.reason}); run \`geogate audit verify\` and move the directory aside`)
        return { seq: c.record.seq, hash: c.record.hash }
      }
      len = Math.min(size, len * 4)
    }
  } finally { await fh.close() }
}
