/**
 * Replay of a month of audit records under a candidate policy.
 *   node --import tsx test/bench/policy-replay.ts [records]     (default 1,000,000)
 * Generates November 2026 for two replicas through the real writer, each record decided by the real decide() under
 * a recorded policy (so records carry policyVersion, capabilities and the rest), then times
 * `geogate policy replay` (the built CLI in a child process, as an operator runs it) against a candidate that
 * embargoes one more country, and the in-process replay.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, readdir, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setImmediate as tick } from 'node:timers/promises'
import pino from 'pino'
import { AuditWriter } from '../../src/audit/writer.js'
import type { AuditEntry } from '../../src/audit/types.js'
import { parseConfig } from '../../src/config/load.js'
import { snapshotFromConfig } from '../../src/policy/snapshot.js'
import { decide } from '../../src/policy/decide.js'
import { describeRequest } from '../../src/policy/endpoint.js'
import { unknownGeo } from '../../src/geo/types.js'
import { replayAudit } from '../../src/policy/replay.js'
import { baseConfig } from '../helpers/gateway.js'

const total = Number(process.argv[2] ?? 1_000_000)
const cli = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url))
const COUNTRIES = ['US', 'DE', 'FR', 'GB', 'JP', 'BR', 'IN', 'CN', 'RU', 'CU', 'IR', 'KP', 'SY', 'UA', 'NL', 'SE', 'CA', 'MX', 'NG', 'ZA', 'AU', 'KR', 'SG', 'TR', 'PL', null]
const BODIES = [
  describeRequest('POST', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hello there' }] }),
  describeRequest('POST', '/v1/chat/completions', { model: 'frontier-1', messages: [{ role: 'user', content: 'hello' }], stream: true }),
  describeRequest('POST', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: [], tools: [{ type: 'function' }], max_tokens: 2000 }),
  describeRequest('POST', '/v1/embeddings', { model: 'llama-3.1-8b', input: 'x' })
]

const raw = baseConfig()
const recorded = snapshotFromConfig(parseConfig(raw))
const locations = raw.locations as { tiers: Record<string, string[]> }
const candidateRaw = { ...raw, locations: { ...locations, tiers: { ...locations.tiers, embargoed: [...(locations.tiers.embargoed ?? []), 'BR'] } } }
const keys = [
  { keyId: 'k1', org: 'Org One', tier: 'tier1', country: 'US', verifiedEntity: false },
  { keyId: 'k2', org: 'Org Two', tier: 'tier2', country: undefined, verifiedEntity: false }
]

function make (i: number, ts: string): AuditEntry {
  const country = COUNTRIES[(i * 7919) % COUNTRIES.length] ?? null
  const shape = BODIES[(i * 31) % BODIES.length] ?? (BODIES[0] as typeof BODIES[0])
  const who = keys[i % 5 === 0 ? 1 : 0] ?? (keys[0] as typeof keys[0])
  const geo = { ...unknownGeo('2026-10-28T00:00:00.000Z'), country, subdivisions: country === 'UA' ? ['UA-43'] : [] }
  if (i % 101 === 0) geo.anonymizer = { ...geo.anonymizer, vpn: true, any: true }
  const d = decide(shape, geo, who, recorded, { located: country !== null, internal: false })
  const deny = !d.allow
  return {
    ts, requestId: `req-${i.toString(36)}`, keyId: who.keyId, org: who.org, ip: `198.51.100.${i % 250}`,
    country, subdivision: geo.subdivisions[0] ?? null, anonymizer: geo.anonymizer.vpn ? ['vpn'] : [],
    geodbBuild: geo.build, model: shape.model, classification: shape.model === 'frontier-1' ? '4E091' : 'EAR99', servingRegion: 'US', endpoint: shape.endpoint,
    crossBorder: country !== 'US', decision: deny ? 'deny' : 'allow', rule: d.rule, status: deny ? d.status : 200,
    tokensIn: deny ? null : 50 + i % 400, tokensOut: deny ? null : 20 + i % 900, latencyMs: deny ? 0.4 : 120 + i % 800,
    locationTier: d.locationTier, keyTier: d.keyTier, degraded: false, shadow: false, outcome: deny ? 'refused' : 'ok', upstreamStatus: deny ? null : 200,
    stream: shape.stream, tokensEstimated: false,
    policyVersion: recorded.hash, capabilities: shape.capabilities, subdivisions: geo.subdivisions, keyCountry: who.country ?? null,
    verifiedEntity: who.verifiedEntity, maxOutputTokens: shape.maxOutputTokens, n: null, choices: shape.choices, promptTokens: shape.promptTokens,
    address: country === null ? 'unlocated' : 'public'
  }
}

async function runCli (args: string[]): Promise<{ secs: number, code: number | null, out: string }> {
  return await new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    p.stdout.on('data', (c: Buffer) => { out += c.toString() })
    p.on('error', reject)
    p.on('close', (code) => { resolve({ secs: Number(process.hrtime.bigint() - t0) / 1e9, code, out }) })
  })
}

const dir = await mkdtemp(join(tmpdir(), 'geogate-bench-replay-'))
try {
  const log = pino({ level: 'silent' })
  const audit = join(dir, 'audit')
  const writers = await Promise.all(['replica-a', 'replica-b'].map(async (writer) => await AuditWriter.open({
    dir: audit, writer, fsyncIntervalMs: 50, flushBytes: 1 << 20, rotateBytes: 64 * 1024 * 1024, digestIntervalMs: 0, signer: null, log
  })))
  const start = Date.UTC(2026, 10, 1)
  const span = Date.UTC(2026, 11, 1) - start
  const g0 = process.hrtime.bigint()
  for (let i = 0; i < total; i++) {
    writers[i % 2]?.append(make(i, new Date(start + Math.floor((i / total) * span)).toISOString()))
    if (i % 1000 === 999) await tick()
    if (i % 200_000 === 199_999) process.stderr.write(`generated ${i + 1}\n`)
  }
  for (const w of writers) await w.close()
  const genSecs = Number(process.hrtime.bigint() - g0) / 1e9
  let bytes = 0
  for (const f of await readdir(audit)) if (f.endsWith('.jsonl')) bytes += (await stat(join(audit, f))).size
  process.stdout.write(`generated ${total.toLocaleString('en-US')} records (${(bytes / 1e6).toFixed(0)} MB) in ${genSecs.toFixed(1)} s\n`)

  const file = join(dir, 'candidate.json')
  await writeFile(file, JSON.stringify({ ...candidateRaw, audit: { dir: audit } }))
  const r = await runCli(['policy', 'replay', '--audit', audit, '--config', file])
  process.stdout.write(`geogate policy replay (CLI): ${r.secs.toFixed(2)} s = ${Math.round(total / r.secs).toLocaleString('en-US')} records/s (exit ${String(r.code)})\n`)
  process.stdout.write(r.out.split('\n').slice(0, 3).map((l) => `  ${l}\n`).join(''))

  const r0 = process.hrtime.bigint()
  const rep = await replayAudit(audit, parseConfig({ ...candidateRaw, audit: { dir: audit } }))
  const secs = Number(process.hrtime.bigint() - r0) / 1e9
  process.stdout.write(`replay (in process): ${rep.records.toLocaleString('en-US')} records in ${secs.toFixed(2)} s = ${Math.round(rep.records / secs).toLocaleString('en-US')} records/s; newly refused ${rep.newlyRefused.toLocaleString('en-US')}, newly allowed ${rep.newlyAllowed}\n`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
