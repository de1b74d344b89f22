/**
 * A year of audit records over 20 writers, then what an auditor runs over it, each as the built CLI in a child
 * process (as an auditor runs it):
 *   node --import tsx test/bench/audit-year.ts [records=1000000] [dir]
 * Without DIR the records are generated (test/bench/audit-generate.ts) into a temp directory and removed after;
 * with DIR an existing directory is measured (generate 10M once: ~8 GB, ~10 min). Figures: the usage report for a
 * month and for the whole year, a typical filtered query, a whole-year aggregate query, verify, and the Parquet
 * export.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPairSync } from 'node:crypto'
import { loadSigner } from '../../src/audit/chain.js'
import { generate } from './audit-generate.js'

const records = Number(process.argv[2] ?? 1_000_000)
const given = process.argv[3]
const cli = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url))

function runCli (args: string[]): Promise<{ secs: number, out: string, code: number | null }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    p.stdout.on('data', (c: Buffer) => { if (out.length < 4096) out += c.toString() })
    p.on('error', reject)
    p.on('close', (code) => { resolve({ secs: Number(process.hrtime.bigint() - t0) / 1e9, out, code }) })
  })
}

const dir = given ?? await mkdtemp(join(tmpdir(), 'geogate-bench-year-'))
const parquet = join(tmpdir(), `geogate-bench-year-${process.pid}.parquet`)
try {
  if (given === undefined) {
    const t0 = Date.now()
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const g = generate(dir, { records, writers: 20, start: Date.UTC(2026, 0, 1), spanMs: Date.UTC(2027, 0, 1) - Date.UTC(2026, 0, 1), signer: loadSigner(pem) })
    process.stdout.write(`generated ${records.toLocaleString('en-US')} records, 20 writers, ${g.segments} segments, ${(g.bytes / 1e6).toFixed(0)} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`)
  }
  const steps: Array<[string, string[]]> = [
    ['report --period 2026-06 (one month)', ['report', '--dir', dir, '--period', '2026-06']],
    ['report --period 2026 (the whole year)', ['report', '--dir', dir, '--period', '2026']],
    ['query: refusals of one country in one month, by rule', ['audit', 'query', dir, "SELECT rule, count(*) AS n FROM records WHERE country = 'IR' AND ts >= '2026-06-01' AND ts < '2026-07-01' GROUP BY rule ORDER BY n DESC", '--from', '2026-06-01', '--to', '2026-07-01', '--format', 'csv']],
    ['query: one key over the whole year, per month', ['audit', 'query', dir, "SELECT substr(ts, 1, 7) AS month, count(*) AS n, sum(tokensOut) AS tokens FROM records WHERE keyId = 'key-7' GROUP BY month ORDER BY month", '--format', 'csv']],
    ['audit export --format parquet (the whole year)', ['audit', 'export', '--dir', dir, '--format', 'parquet', '--out', parquet]],
    ['audit verify (every chain, every digest)', ['audit', 'verify', dir]]
  ]
  for (const [name, args] of steps) {
    await rm(parquet, { force: true })
    const r = await runCli(args)
    const extra = args.includes('parquet') ? `, ${((await stat(parquet)).size / 1e6).toFixed(0)} MB` : ''
    process.stdout.write(`${name}: ${r.secs.toFixed(2)} s (exit ${String(r.code)}${extra})\n`)
  }
} finally {
  await rm(parquet, { force: true })
  if (given === undefined) await rm(dir, { recursive: true, force: true })
}
