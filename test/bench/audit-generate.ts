/**
 * A year (or any span) of audit records for many writers, written straight into the on-disk format the writer
 * produces — segments rotated per UTC day, each closed by a signed final digest chained per writer — without
 * going through the writer's group commit, so 10M records take minutes rather than an hour.
 *   node --import tsx test/bench/audit-generate.ts DIR [records=1000000] [writers=20] [months=12]
 * The records are byte for byte what `sealJson`/`sealDigest` make, so `geogate audit verify` passes on them.
 */
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { GENESIS, sealDigest, sealJson, sha256, type Signer } from '../../src/audit/chain.js'
import { createHash } from 'node:crypto'
import { DIGEST_DIR, dayOf, digestFile, segmentFile } from '../../src/audit/segments.js'
import type { AuditEntry } from '../../src/audit/types.js'

const COUNTRIES = ['US', 'DE', 'FR', 'GB', 'JP', 'BR', 'IN', 'CN', 'RU', 'CU', 'IR', 'KP', 'SY', 'UA', 'NL', 'SE', 'CA', 'MX', 'NG', 'ZA', 'AU', 'KR', 'SG', 'TR', 'PL', null]
const MODELS = [['llama-3.1-8b', 'EAR99'], ['llama-3.1-70b', 'EAR99'], ['frontier-1', '4E091'], ['embed-small', 'EAR99']] as const
const EMBARGOED = new Set(['CU', 'IR', 'KP', 'SY'])
const TIER1 = new Set(['US', 'DE', 'FR', 'GB', 'JP', 'NL', 'SE'])

/** A plausible interaction; `i` varies country, model, tier, refusals, tokens. */
export function makeEntry (i: number, ts: string): AuditEntry {
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
    locationTier, keyTier, degraded: false, shadow: i % 211 === 0, outcome: deny ? 'refused' : 'ok', upstreamStatus: deny ? null : 200,
    stream: i % 2 === 0, tokensEstimated: false
  }
}

export interface GenerateOptions {
  records: number
  writers: number
  /** first instant (ms since epoch) and span (ms) the records are spread over */
  start: number
  spanMs: number
  signer: Signer | null
  onProgress?: (records: number) => void
}

export interface Generated { records: number, bytes: number, segments: number, writers: string[] }

/** Writer ids `replica-00` … ; records are dealt round robin, so each writer's chain covers the whole span. */
export function generate (dir: string, o: GenerateOptions): Generated {
  mkdirSync(join(dir, DIGEST_DIR), { recursive: true })
  const writers = Array.from({ length: o.writers }, (_, k) => `replica-${String(k).padStart(2, '0')}`)
  if (o.signer !== null) {
    writeFileSync(join(dir, DIGEST_DIR, `${o.signer.keyId}.pem`), o.signer.publicKeyPem)
    writeFileSync(join(dir, DIGEST_DIR, 'public-key.pem'), o.signer.publicKeyPem)
  }
  let bytes = 0
  let segments = 0
  const per = Math.ceil(o.records / o.writers)
  for (let w = 0; w < o.writers; w++) {
    const writer = writers[w] ?? ''
    let seq = 0
    let prev = GENESIS
    let digestSeq = 0
    let prevDigest = GENESIS
    let seg: { name: string, fd: number, day: string, firstSeq: number, bytes: number, hasher: ReturnType<typeof createHash>, buf: string[], bufBytes: number } | null = null
    const flush = (): void => {
      if (seg === null || seg.buf.length === 0) return
      const b = Buffer.from(seg.buf.join(''))
      writeSync(seg.fd, b)
      seg.hasher.update(b)
      seg.bytes += b.length
      seg.buf = []
      seg.bufBytes = 0
    }
    const close = (): void => {
      if (seg === null) return
      flush()
      closeSync(seg.fd)
      digestSeq++
      const text = sealDigest({
        kind: 'digest', version: 1, writer, digestSeq, ts: new Date().toISOString(), segment: seg.name, bytes: seg.bytes,
        sha256: seg.hasher.digest('hex'), firstSeq: seg.firstSeq, lastSeq: seq, lastHash: prev, records: seq - seg.firstSeq + 1,
        final: true, prevDigest
      }, o.signer)
      const name = digestFile(writer, digestSeq)
      writeFileSync(join(dir, DIGEST_DIR, `.${name}.tmp`), text)
      renameSync(join(dir, DIGEST_DIR, `.${name}.tmp`), join(dir, DIGEST_DIR, name))
      prevDigest = sha256(text)
      bytes += seg.bytes
      segments++
      seg = null
    }
    for (let k = 0; k < per; k++) {
      const i = k * o.writers + w
      if (i >= o.records) break
      const ts = new Date(o.start + Math.floor((k / per) * o.spanMs)).toISOString()
      const day = dayOf(ts)
      if (seg === null || seg.day !== day) {
        close()
        const name = segmentFile(writer, day, seq + 1)
        seg = { name, fd: openSync(join(dir, name), 'wx'), day, firstSeq: seq + 1, bytes: 0, hasher: createHash('sha256'), buf: [], bufBytes: 0 }
      }
      seq++
      const { line, hash } = sealJson('{"kind":"interaction",' + JSON.stringify(makeEntry(i, ts)).slice(1), writer, seq, prev)
      prev = hash
      seg.buf.push(line)
      seg.bufBytes += line.length
      if (seg.bufBytes > 1 << 20) flush()
      if (i % 500_000 === 0) o.onProgress?.(i)
    }
    close()
  }
  return { records: o.records, bytes, segments, writers }
}

if (process.argv[1]?.endsWith('audit-generate.ts') === true) {
  const [out, records = '1000000', nWriters = '20', months = '12'] = process.argv.slice(2)
  if (out === undefined) {
    process.stderr.write('usage: audit-generate.ts DIR [records] [writers] [months]\n')
    process.exit(2)
  }
  const { loadSigner } = await import('../../src/audit/chain.js')
  const { generateKeyPairSync } = await import('node:crypto')
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const start = Date.UTC(2026, 0, 1)
  const spanMs = Date.UTC(2026, Number(months), 1) - start
  const t0 = Date.now()
  const g = generate(out, { records: Number(records), writers: Number(nWriters), start, spanMs, signer: loadSigner(pem), onProgress: (n) => { process.stderr.write(`generated ~${n}\n`) } })
  process.stdout.write(`${g.records} records, ${g.writers.length} writers, ${g.segments} segments, ${(g.bytes / 1e6).toFixed(0)} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`)
}
