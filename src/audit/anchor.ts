import { readFile, rename, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { sha256 } from './chain.js'
import { DIGEST_DIR, listDigests, parseDigestName } from './segments.js'
import { requestTimestamp, type TsaOptions } from './anchor-tsa.js'
import type { WitnessSink } from './anchor-witness.js'

/**
 * Anchoring digests outside the gateway, after the writer has put each one in digests/:
 *   - RFC 3161: the SHA-256 of the digest file is time-stamped by a TSA; its reply is kept as digests/<name>.tsr,
 *     so the digest provably existed at that time (a log rebuilt later cannot have tokens that old);
 *   - witnesses: the digest is appended to each witness (an INSERT-only PostgreSQL table, S3 Object Lock).
 * This runs beside the writer, never in its commit path: a slow or unreachable TSA or witness never holds up a
 * record. Failures are retried with backoff (the digest stays queued) and logged; `verify --tsa-cert` and
 * `verify --witness` then show what is not anchored. On start, this writer's digests that lack a token are stamped,
 * and its newest digests are witnessed again (witnesses ignore repeats).
 */

export interface AnchorOptions {
  dir: string
  writer: string
  tsa: TsaOptions | null
  witnesses: WitnessSink[]
  log: Logger
  /** on start, re-send this many of the writer's newest digests to the witnesses */
  rewitness?: number
}

interface Job { file: string, text: string, stamp: boolean, witness: WitnessSink[] }

export interface AnchorStats { pending: number, stamped: number, witnessed: number, failures: number }

export function tokenFile (digestFile: string): string { return `${digestFile.replace(/\.json$/, '')}.tsr` }

export class Anchorer {
  readonly #o: AnchorOptions
  #queue: Job[] = []
  #running: Promise<void> | null = null
  #closed = false
  #backoffMs = 0
  #wake: (() => void) | null = null
  readonly #stats: AnchorStats = { pending: 0, stamped: 0, witnessed: 0, failures: 0 }

  constructor (o: AnchorOptions) { this.#o = o }

  get enabled (): boolean { return this.#o.tsa !== null || this.#o.witnesses.length > 0 }

  stats (): AnchorStats { return { ...this.#stats, pending: this.#queue.length } }

  /** A digest file the writer has just put in place (its name in digests/, and its text). */
  submit (file: string, text: string): void {
    if (!this.enabled || this.#closed) return
    this.#queue.push({ file, text, stamp: this.#o.tsa !== null, witness: [...this.#o.witnesses] })
    this.#kick()
  }

  /** Digests of this writer from an earlier run: stamp those without a token, re-witness the newest. */
  async catchUp (): Promise<void> {
    if (!this.enabled) return
    const mine = (await listDigests(this.#o.dir)).get(this.#o.writer) ?? []
    const again = new Set(mine.slice(-(this.#o.rewitness ?? 20)).map((d) => d.file))
    for (const d of mine) {
      const stamp = this.#o.tsa !== null && !await exists(join(this.#o.dir, DIGEST_DIR, tokenFile(d.file)))
      const witness = again.has(d.file) ? [...this.#o.witnesses] : []
      if (!stamp && witness.length === 0) continue
      this.#queue.push({ file: d.file, text: await readFile(join(this.#o.dir, DIGEST_DIR, d.file), 'utf8'), stamp, witness })
    }
    this.#kick()
  }

  #kick (): void {
    if (this.#wake !== null) { const w = this.#wake; this.#wake = null; w() }
    if (!this.#closed) this.#running ??= this.#loop().finally(() => { this.#running = null })
  }

  async #loop (): Promise<void> {
    while (this.#queue.length > 0) {
      const job = this.#queue[0] as Job
      try {
        await this.#anchor(job)
        this.#queue.shift()
        this.#backoffMs = 0
      } catch (err) {
        this.#stats.failures++
        this.#backoffMs = Math.min(60_000, Math.max(1000, this.#backoffMs * 2))
        this.#o.log.error({ err, digest: job.file, retryInMs: this.#backoffMs }, 'audit digest not anchored yet (TSA or witness unreachable); retrying')
        if (this.#closed) return
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => { this.#wake = null; resolve() }, this.#backoffMs)
          timer.unref()
          this.#wake = () => { clearTimeout(timer); resolve() }
        })
        if (this.#closed) return
      }
    }
  }

  async #anchor (job: Job): Promise<void> {
    const hash = sha256(job.text)
    if (job.stamp && this.#o.tsa !== null) {
      const reply = await requestTimestamp(this.#o.tsa, Buffer.from(hash, 'hex'))
      const path = join(this.#o.dir, DIGEST_DIR, tokenFile(job.file))
      await writeFile(path + '.tmp', reply, { flush: true })
      await rename(path + '.tmp', path)
      job.stamp = false
      this.#stats.stamped++
    }
    const name = parseDigestName(job.file)
    while (job.witness.length > 0) {
      const w = job.witness[0]
      if (w === undefined) break
      await w.append({ writer: name?.writer ?? this.#o.writer, digestSeq: name?.digestSeq ?? 0, file: job.file, sha256: hash, digest: job.text })
      job.witness.shift()
      this.#stats.witnessed++
    }
  }

  /** Wait (up to timeoutMs) for what is queued to be anchored, then stop and close the witnesses. */
  async close (timeoutMs = 5000): Promise<void> {
    if (this.#running !== null) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.#running, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })])
      clearTimeout(timer)
    }
    this.#closed = true
    this.#kick()
    await this.#running
    if (this.#queue.length > 0) this.#o.log.error({ pending: this.#queue.map((j) => j.file) }, 'audit digests left unanchored at close; they are stamped on the next start')
    for (const w of this.#o.witnesses) await w.close().catch(() => {})
  }
}

async function exists (p: string): Promise<boolean> {
  try { await access(p); return true } catch { return false }
}
