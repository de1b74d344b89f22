import { parentPort, workerData } from 'node:worker_threads'
import { verifyDir } from './verify.js'

/** A thread of verify-parallel.ts: verify some writers' chains, report progress and the result to the parent. */
const job = workerData as { dir: string, publicKeys?: string[], live?: boolean, writers: string[] }
const result = await verifyDir(job.dir, {
  ...(job.publicKeys === undefined ? {} : { publicKeys: job.publicKeys }),
  ...(job.live === undefined ? {} : { live: job.live }),
  onlyWriters: job.writers,
  onProgress: (p) => { parentPort?.postMessage({ progress: p }) }
})
parentPort?.postMessage({ result })
