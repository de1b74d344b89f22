import { readFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256 } from './chain.js'
import { DIGEST_DIR, listDigests } from './segments.js'
import { verifyTimestamp } from './anchor-tsa.js'
import { tokenFile } from './anchor.js'
import type { WitnessReader } from './anchor-witness.js'
import type { VerifyProblem } from './verify.js'

/**
 * The checks of what lives outside the directory, run by `audit verify` after the chains themselves verify:
 *  - every digest has its RFC 3161 token, and the token stamps that digest's SHA-256 and is signed by the pinned
 *    TSA certificate (checked by `openssl ts -verify`);
 *  - every digest a witness holds is in the directory with the same bytes: a tail cut off together with its
 *    digests, or a digest rewritten, shows here and nowhere else.
 */

export interface TimestampCheck { problem: VerifyProblem | null, stamped: Set<string>, checked: number }

export async function verifyTimestamps (dir: string, tsaCert: string, onProgress?: (n: number) => void): Promise<TimestampCheck> {
  const files = [...(await listDigests(dir)).values()].flat().map((d) => d.file)
  const stamped = new Set<string>()
  let problem: VerifyProblem | null = null
  let next = 0
  const worker = async (): Promise<void> => {
    while (problem === null && next < files.length) {
      const file = files[next++] as string
      const token = join(dir, DIGEST_DIR, tokenFile(file))
      try { await access(token) } catch {
        problem ??= { file: `${DIGEST_DIR}/${file}`, line: null, seq: null, reason: `no timestamp token (${DIGEST_DIR}/${tokenFile(file)}): the digest was never time-stamped, or its token was removed` }
        return
      }
      const why = await verifyTimestamp(token, sha256(await readFile(join(dir, DIGEST_DIR, file), 'utf8')), tsaCert)
      if (why !== null) {
        problem ??= { file: `${DIGEST_DIR}/${tokenFile(file)}`, line: null, seq: null, reason: `timestamp token does not vouch for ${file}: ${why}` }
        return
      }
      stamped.add(`${DIGEST_DIR}/${file}`)
      onProgress?.(stamped.size)
    }
  }
  // openssl is a process per token: two at a time keeps a large directory moving without hogging the machine.
  await Promise.all([worker(), worker()])
  return { problem, stamped, checked: stamped.size }
}

export interface WitnessCheck { problem: VerifyProblem | null, warnings: string[], entries: number }

export async function verifyWitness (dir: string, reader: WitnessReader): Promise<WitnessCheck> {
  const entries = await reader.list()
  const local = await listDigests(dir)
  const warnings: string[] = []
  const witnessed = new Map<string, number>()
  for (const e of entries) {
    witnessed.set(e.writer, Math.max(witnessed.get(e.writer) ?? 0, e.digestSeq))
    let text: string
    try {
      text = await readFile(join(dir, DIGEST_DIR, e.file), 'utf8')
    } catch {
      const have = local.get(e.writer)?.at(-1)?.digestSeq ?? 0
      let detail = ''
      try {
        const d = JSON.parse(e.digest) as { segment: string, firstSeq: number, lastSeq: number, ts: string }
        detail = ` (segment ${d.segment}, records ${d.firstSeq}..${d.lastSeq}, digest of ${d.ts})`
      } catch { /* the witness's copy is what it is */ }
      return {
        problem: { file: `${DIGEST_DIR}/${e.file}`, line: null, seq: null, reason: `${reader.name} holds digest #${e.digestSeq} of writer ${e.writer}${detail} but the directory does not (its digests stop at #${have}): the chain's tail was cut off together with its digests` },
        warnings,
        entries: entries.length
      }
    }
    if (sha256(text) !== e.sha256) {
      return { problem: { file: `${DIGEST_DIR}/${e.file}`, line: null, seq: null, reason: `differs from the copy ${reader.name} holds: the digest was rewritten after it was witnessed` }, warnings, entries: entries.length }
    }
  }
  for (const [writer, list] of local) {
    const last = list.at(-1)?.digestSeq ?? 0
    const seen = witnessed.get(writer) ?? 0
    if (last > seen) warnings.push(`writer ${writer}: digests #${seen + 1}..#${last} are not in ${reader.name} (not witnessed yet, or the witness was unreachable)`)
  }
  return { problem: null, warnings, entries: entries.length }
}
