/**
 * A month of audit records, then the report over it.
 *   node --import tsx test/bench/audit-report.ts [records]     (default 1,000,000)
 * Generates November 2026 for two replicas (two chains, daily and size rotation, signed digests) through the real
 * writer, then times `geogate report --period 2026-11` (JSON and HTML, the built CLI in a child process, as an
 * auditor runs it), the in-process report, and `geogate audit verify` over the same directory.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, readdir, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setImmediate as tick } from 'node:timers/promises'
import pino from 'pino'
import { AuditWriter } from '../../src/audit/writer.js'
import { loadSigner } from '../../src/audit/chain.js'
import { buildReport } from '../../src/audit/report.js'
import type { AuditEntry } from '../../src/audit/types.js'
import { signingKeyPem } from '../helpers/audit.js'

const total = Number(process.argv[2] ?? 1_000_000)
const cli = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url))
const COUNTRIES = ['US', 'DE', 'FR', 'GB', 'JP', 'BR', 'IN', 'CN', 'RU', 'CU', 'IR', 'KP', 'SY', 'UA', 'NL', 'SE', 'CA', 'MX', 'NG', 'ZA', 'AU', 'KR', 'SG', 'TR', 'PL', null]
const MODELS = [['llama-3.1-8b', 'EAR99'], ['llama-3.1-70b', 'EAR99'], ['frontier-1', '4E091'], ['embed-small', 'EAR99']] as const
const EMBARGOED = new Set(['CU', 'IR', 'KP', 'SY'])
const TIER1 = new Set(['US', 'DE', 'FR', 'GB', 'JP', 'NL', 'SE'])

function make (i: number, ts: string): AuditEntry {
  const country = COUNTRIES[(i * 7919) % COUNTRIES.length] ?? null
  const [model, classification] = MODELS[(i * 31) % MODELS.length] ?? MODELS[0]
  const keyTier = i % 5 === 0 ? 'tier2' : 'tier1'
  const locationTier = country === null || EMBARGOED.has(country) ? 'embargoed' : TIER1.has(country) ? 'tier1' : 'tier2'
  let rule = `tier:${keyTier}:allow`
  let status = 200
  if (locationTier === 'embargoed') { rule = `location:${country ?? 'unknown'}`; status = 451 } else if (locationTier === 'tier2' && model === 'frontier-1') { rule = 'tier:tier2:model'; status = 403 } else if (i % 97 === 0) { rule = 'limit:key:requestsPerMinute'; status = 429 }
  const deny = status !== 200
  return {
    ts, requestId: `req-${i.toString(36)}`, keyId: `key-${i % 40}`, org: `Org ${i % 12}`, ip: `198.51.100.${i % 250}`,
    country, subdivision: country === 'UA' ? 'UA-43' : null, anonymizer: i % 101 === 0 ? ['vpn'] : [],
    geodbBuild: '2026-10-28T00:00:00.000Z', model, classification, servingRegion: 'US', endpoint: 'chat.completions',
    crossBorder: country !== 'US', decision: deny ? 'deny' : 'allow', rule, status,
    tokensIn: deny ? null : 50 + i % 400, tokensOut: deny ? null : 20 + i % 900, latencyMs: deny ? 0.4 : 120 + i % 800,
    locationTier, keyTier, degraded: false, shadow: false, outcome: deny ? 'refused' : 'ok', upstreamStatus: deny ? null : 200,
    stream: i % 2 === 0, tokensEstimated: false
  }
}

function runCli (args: string[]): Promise<{ secs: number, bytes: number, code: number | null }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
    let bytes = 0
    p.stdout.on('data', (c: Buffer) => { bytes += c.length })
    p.on('error', reject)
    p.on('close', (code) => { resolve({ secs: Number(process.hrtime.bigint() - t0) / 1e9, bytes, code }) })
  })
}

const dir = await mkdtemp(join(tmpdir(), 'geogate-bench-report-'))
try {
  const signer = loadSigner(signingKeyPem())
  const log = pino({ level: 'silent' })
  const writers = await Promise.all(['replica-a', 'replica-b'].map(async (writer) => await AuditWriter.open({
    dir, writer, fsyncIntervalMs: 50, flushBytes: 1 << 20, rotateBytes: 64 * 1024 * 1024, digestIntervalMs: 0, signer, log
  })))
  const start = Date.UTC(2026, 10, 1)
  const span = Date.UTC(2026, 11, 1) - start
  const g0 = process.hrtime.bigint()
  for (let i = 0; i < total; i++) {
    const ts = new Date(start + Math.floor((i / total) * span)).toISOString()
    writers[i % 2]?.append(make(i, ts))
    if (i % 1000 === 999) await tick()
    if (i % 200_000 === 199_999) process.stderr.write(`generated ${i + 1}\n`)
  }
  for (const w of writers) await w.close()
  const genSecs = Number(process.hrtime.bigint() - g0) / 1e9
  let bytes = 0
  let segments = 0
  for (const f of await readdir(dir)) if (f.endsWith('.jsonl') && f.includes('_')) { bytes += (await stat(join(dir, f))).size; segments++ }
  process.stdout.write(`generated ${total.toLocaleString('en-US')} records (2 writers, ${segments} segments, ${(bytes / 1e6).toFixed(0)} MB) in ${genSecs.toFixed(1)} s = ${Math.round(total / genSecs).toLocaleString('en-US')} records/s through the writer\n`)

  const r0 = process.hrtime.bigint()
  const rep = await buildReport(dir, '2026-11')
  const inproc = Number(process.hrtime.bigint() - r0) / 1e9
  process.stdout.write(`report (in process): ${rep.totals.interactions.toLocaleString('en-US')} interactions, ${rep.rows.length} rows in ${inproc.toFixed(2)} s = ${Math.round(rep.totals.interactions / inproc).toLocaleString('en-US')} records/s\n`)
  for (const format of ['json', 'html']) {
    const r = await runCli(['report', '--dir', dir, '--period', '2026-11', '--format', format])
    process.stdout.write(`geogate report --period 2026-11 --format ${format}: ${r.secs.toFixed(2)} s (exit ${String(r.code)}, ${(r.bytes / 1024).toFixed(0)} KiB out)\n`)
  }
  const v = await runCli(['audit', 'verify', dir])
  process.stdout.write(`geogate audit verify: ${v.secs.toFixed(2)} s (exit ${String(v.code)})\n`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
