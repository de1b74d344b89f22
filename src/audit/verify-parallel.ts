import { Worker } from 'node:worker_threads'
import { listDigests, listSegments } from './segments.js'
import { verifyDir, type VerifyOptions, type VerifyResult } from './verify.js'

/**
 * verifyDir over several threads: writers' chains are independent, so they are dealt round robin to worker
 * threads and the results merged — the same result as one thread (the first problem is that of the first failing
 * writer in name order), at up to `threads` times the speed, since verify is CPU-bound (SHA-256 of every line and
 * of every segment) long before the disk is.
 */
export async function verifyDirParallel (dir: string, opts: VerifyOptions & { threads: number }): Promise<VerifyResult> {
  const writers = [...new Set([...(await listSegments(dir)).keys(), ...(await listDigests(dir)).keys()])].sort()
  const n = Math.min(opts.threads, writers.length)
  if (n <= 1) return await verifyDir(dir, opts)
  const groups: string[][] = Array.from({ length: n }, () => [])
  writers.forEach((w, i) => { groups[i % n]?.push(w) })
  const progress = groups.map(() => ({ segments: 0, records: 0, file: '' }))
  const results = await Promise.all(groups.map(async (group, i) => await new Promise<VerifyResult>((resolve, reject) => {
    const worker = new Worker(new URL('./verify-worker.js', import.meta.url), {
      workerData: { dir, publicKeys: opts.publicKeys, live: opts.live, writers: group }
    })
    worker.on('message', (m: { progress?: { segments: number, records: number, file: string }, result?: VerifyResult }) => {
      if (m.progress !== undefined) {
        progress[i] = m.progress
        opts.onProgress?.({ segments: progress.reduce((s, p) => s + p.segments, 0), records: progress.reduce((s, p) => s + p.records, 0), file: m.progress.file })
      }
      if (m.result !== undefined) resolve(m.result)
    })
    worker.once('error', reject)
    worker.once('exit', (code) => { if (code !== 0) reject(new Error(`verify thread exited with ${code}`)) })
  })))
  const failed = results.filter((r) => !r.ok).sort((a, b) => (a.failedWriter ?? '') < (b.failedWriter ?? '') ? -1 : 1)[0]
  const sum = (k: 'segments' | 'records' | 'digests' | 'signedDigests'): number => results.reduce((s, r) => s + r[k], 0)
  const digests = sum('digests')
  const signedDigests = sum('signedDigests')
  const warnings = [...new Set(results.flatMap((r) => r.warnings).filter((w) => !w.startsWith('UNSIGNED:')))]
  if (failed === undefined && digests > signedDigests) warnings.push(`UNSIGNED: ${digests - signedDigests} of ${digests} digest(s) carry no signature, so whoever can write these files can rebuild the chain and its digests`)
  return {
    ok: failed === undefined,
    signed: failed === undefined && digests > 0 && signedDigests === digests,
    writers: results.flatMap((r) => r.writers).sort((a, b) => a.writer < b.writer ? -1 : a.writer > b.writer ? 1 : 0),
    chains: writers.length,
    segments: sum('segments'),
    records: sum('records'),
    digests,
    signedDigests,
    problem: failed?.problem ?? null,
    failedWriter: failed?.failedWriter ?? null,
    warnings
  }
}
