/**
 * Audit writer throughput with fsync group commit: how many records a second one replica can make durable, and
 * how long a request waits for its write-ahead journal entry before it may be forwarded.
 *   node --import tsx test/bench/audit-writer.ts [records]
 * Each throughput scenario appends records as the request path does (append() never waits), yielding to the event
 * loop every 500 records like a busy server, then waits for the last group commit (write + fdatasync). The journal
 * scenarios run C concurrent callers, each looping begin() (awaited: the forward waits for it) → a simulated
 * backend time → append(): the wait, p50/p99, and how many begins share one fdatasync.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import pino from 'pino'
import { AuditWriter } from '../../src/audit/writer.js'
import { loadSigner } from '../../src/audit/chain.js'
import { entry, signingKeyPem } from '../helpers/audit.js'

const total = Number(process.argv[2] ?? 200_000)
const dirBase = process.env.BENCH_DIR ?? tmpdir()

async function scenario (name: string, fsyncIntervalMs: number, flushBytes: number): Promise<void> {
  const dir = await mkdtemp(join(dirBase, 'geogate-bench-writer-'))
  try {
    const w = await AuditWriter.open({
      dir, writer: 'bench', fsyncIntervalMs, flushBytes, rotateBytes: 256 * 1024 * 1024, digestIntervalMs: 0,
      signer: loadSigner(signingKeyPem()), log: pino({ level: 'silent' })
    })
    const entries = Array.from({ length: 1000 }, (_, i) => entry(i))
    let appendNs = 0n
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < total; i++) {
      const e = entries[i % 1000] ?? entry(i)
      const a = process.hrtime.bigint()
      w.append({ ...e, requestId: `r-${i}` })
      appendNs += process.hrtime.bigint() - a
      if (i % 500 === 499) await tick()
    }
    await w.flush()
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    const s = w.stats()
    await w.close()
    process.stdout.write(`${name.padEnd(34)} ${String(total).padStart(8)} records in ${secs.toFixed(2)} s = ${Math.round(total / secs).toLocaleString('en-US').padStart(9)} records/s durable · append() ${(Number(appendNs) / total / 1000).toFixed(2)} µs · ${s.commits} group commits (${Math.round(total / Math.max(1, s.commits))} records/fsync)\n`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

process.stdout.write(`audit writer, ${total} records of ~${Buffer.byteLength(JSON.stringify(entry(1))) + 150} bytes, Node ${process.version}\n`)
await scenario('fsyncIntervalMs 50, flushBytes 1 MiB', 50, 1 << 20)
await scenario('fsyncIntervalMs 5, flushBytes 256 KiB', 5, 1 << 18)
await scenario('fsyncIntervalMs 0, flushBytes 64 KiB', 0, 1 << 16)

// Sustained: a steady 5,000 interactions/s for 3 s; how far behind does durability run?
{
  const dir = await mkdtemp(join(dirBase, 'geogate-bench-writer-'))
  const w = await AuditWriter.open({ dir, writer: 'bench', fsyncIntervalMs: 50, flushBytes: 1 << 20, rotateBytes: 256 * 1024 * 1024, digestIntervalMs: 0, signer: null, log: pino({ level: 'silent' }) })
  let maxLag = 0
  const start = Date.now()
  let i = 0
  while (Date.now() - start < 3000) {
    for (let k = 0; k < 50; k++) w.append(entry(i++))
    maxLag = Math.max(maxLag, w.stats().lagSeconds)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await w.flush()
  const s = w.stats()
  await w.close()
  await rm(dir, { recursive: true, force: true })
  process.stdout.write(`sustained ~5,000/s for 3 s: ${i} records, ${s.commits} group commits, worst durability lag ${(maxLag * 1000).toFixed(0)} ms\n`)
}

// Write-ahead: C callers, each begin() → (backend) → append(), for 3 s; how long does begin() wait?
async function journalWait (callers: number, backendMs: number): Promise<void> {
  const dir = await mkdtemp(join(dirBase, 'geogate-bench-writer-'))
  const w = await AuditWriter.open({ dir, writer: 'bench', fsyncIntervalMs: 50, flushBytes: 1 << 20, rotateBytes: 256 * 1024 * 1024, digestIntervalMs: 0, signer: null, log: pino({ level: 'silent' }) })
  const waits: number[] = []
  let n = 0
  const end = Date.now() + 3000
  await Promise.all(Array.from({ length: callers }, async () => {
    while (Date.now() < end) {
      const e = entry(n, { requestId: `j-${n++}`, status: null })
      const t0 = process.hrtime.bigint()
      const r = await w.begin(e)
      waits.push(Number(process.hrtime.bigint() - t0) / 1e6)
      if (!r.durable) throw new Error(r.reason)
      if (backendMs > 0) await new Promise((resolve) => setTimeout(resolve, backendMs))
      w.append({ ...e, status: 200 })
    }
  }))
  await w.flush()
  const s = w.stats()
  await w.close()
  await rm(dir, { recursive: true, force: true })
  waits.sort((a, b) => a - b)
  const q = (p: number): string => (waits[Math.min(waits.length - 1, Math.floor(p * waits.length))] ?? NaN).toFixed(2)
  process.stdout.write(`journal wait, ${String(callers).padStart(3)} callers, backend ${String(backendMs).padStart(3)} ms: ${String(waits.length).padStart(6)} begins, p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms · ${(waits.length / Math.max(1, s.journalCommits)).toFixed(1)} begins/fdatasync\n`)
}

await journalWait(1, 0)
await journalWait(20, 0)
await journalWait(20, 200)
await journalWait(100, 20)
