import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { Writable } from 'node:stream'
import { parse } from './args.js'
import { loadConfig, resolvePath } from '../config/load.js'
import { availableParallelism } from 'node:os'
import type { WriterSummary } from '../audit/verify.js'
import { verifyDirParallel } from '../audit/verify-parallel.js'
import { verifyTimestamps, verifyWitness } from '../audit/anchor-verify.js'
import { witnessFromUrl } from '../audit/anchor-witness.js'
import { exportChunks, markExported, type ExportFormat } from '../audit/export.js'
import { parseFilter, segmentCount, type RecordFilter, type SegmentTally } from '../audit/read.js'
import { QUERY_USAGE, exportParquet, queryCmd } from './audit-query.js'
import { keygenCmd, KEYGEN_USAGE } from './audit-keygen.js'

const USAGE = `usage:
  geogate audit verify DIR [--public-key FILE]... [--require-sealed] [--json]
      exit 0 when every chain in DIR is intact, else 1 naming the first bad record (file, line, seq); then one line
      per writer (records, first/last time, newest digest, tail sealed|covered|UNCOVERED); --public-key pins the
      signing key(s) (a chain re-signed with another key fails); --require-sealed: exit 1 when a writer's chain
      stops without a closing digest
      --tsa-cert FILE: every digest must carry an RFC 3161 token from that TSA (checked with \`openssl ts -verify\`;
      needs openssl on the PATH; --config takes audit.tsa.certFile); --witness postgres://…[?table=T] or
      s3://bucket/prefix?region=R: every digest the witness holds must be here, byte for byte
  geogate audit export --dir DIR [--from T] [--to T] [--country CC] [--subdivision CC-X] [--model M]
                       [--key-id ID] [--org ORG] [--decision allow|deny] [--format jsonl|csv|parquet] [--out FILE]
                       [--mark-exported]
      matching records to stdout (or --out FILE) in time order; progress on stderr; parquet needs --out
  Instead of DIR / --dir, --config FILE (or GEOGATE_CONFIG) uses that configuration's audit.dir.
` + QUERY_USAGE + KEYGEN_USAGE

/** The audit directory: given, or audit.dir of the configuration (--config, GEOGATE_CONFIG). */
export async function auditDir (dir: string | undefined, config: string | undefined): Promise<string | undefined> {
  if (dir !== undefined) return dir
  const file = config ?? process.env.GEOGATE_CONFIG
  if (file === undefined) return undefined
  const loaded = await loadConfig(file)
  return resolvePath(loaded.baseDir, loaded.config.audit.dir)
}

/** `geogate audit verify|export`. */
export async function run (argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  // Every command answers --help with exit 0 (SPEC.md, CLI).
  if (argv.includes('--help') || argv.includes('-h')) { process.stdout.write(USAGE); return 0 }
  if (sub === 'verify') return await verify(rest)
  if (sub === 'export') return await exportCmd(rest)
  if (sub === 'query') return await queryCmd(rest, auditDir)
  if (sub === 'keygen') return await keygenCmd(rest)
  process.stderr.write(USAGE)
  return sub === undefined || sub === '--help' ? 1 : 2
}

async function verify (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    'public-key': { type: 'string', multiple: true },
    json: { type: 'boolean' },
    'require-sealed': { type: 'boolean' },
    'tsa-cert': { type: 'string' },
    witness: { type: 'string', multiple: true },
    dir: { type: 'string' },
    config: { type: 'string', short: 'c' }
  }, true)
  const dir = await auditDir(positionals[0] ?? values.dir, values.config)
  if (dir === undefined) { process.stderr.write(USAGE); return 2 }
  const publicKeys = await Promise.all((values['public-key'] ?? []).map(async (f) => await readFile(f, 'utf8')))
  let lastReport = Date.now()
  // Chains are independent: one thread per core (verify is CPU-bound, not disk-bound).
  const r = await verifyDirParallel(dir, {
    threads: Math.min(4, availableParallelism()),
    publicKeys,
    onProgress: (p) => {
      if (Date.now() - lastReport < 1000) return
      lastReport = Date.now()
      process.stderr.write(`verify: ${p.segments} segment(s), ${p.records} record(s) checked (${p.file})\n`)
    }
  })
  // What lives outside the directory, once the chains themselves hold: time-stamps, then witnesses.
  let tsaCert = values['tsa-cert']
  if (tsaCert === undefined && values.config !== undefined) {
    const loaded = await loadConfig(values.config)
    const f = loaded.config.audit.tsa?.certFile
    if (f !== undefined) tsaCert = resolvePath(loaded.baseDir, f)
  }
  if (r.ok && tsaCert !== undefined) {
    const ts = await verifyTimestamps(dir, tsaCert, (n) => {
      if (Date.now() - lastReport < 1000) return
      lastReport = Date.now()
      process.stderr.write(`verify: ${n} timestamp token(s) checked\n`)
    })
    for (const w of r.writers) if (w.lastDigest !== null) w.lastDigest.timestamped = ts.stamped.has(w.lastDigest.file)
    if (ts.problem !== null) { r.ok = false; r.problem = ts.problem }
  }
  for (const url of values.witness ?? []) {
    if (!r.ok) break
    const reader = witnessFromUrl(url)
    try {
      const w = await verifyWitness(dir, reader)
      r.warnings.push(...w.warnings)
      if (w.problem !== null) { r.ok = false; r.problem = w.problem }
    } finally { await reader.close() }
  }
  const unsealed = r.writers.filter((w) => w.tail === 'uncovered')
  if (values.json === true) process.stdout.write(JSON.stringify(r) + '\n')
  else if (r.ok) {
    process.stdout.write(`ok: ${r.chains} chain(s), ${r.segments} segment(s), ${r.records} record(s), ${r.digests} digest(s) (${r.signedDigests} signed)${r.digests > r.signedDigests ? ' — UNSIGNED' : ''}\n`)
    process.stdout.write(writerTable(r.writers))
  } else if (r.problem !== null) {
    const p = r.problem
    process.stdout.write(`FAILED: ${p.file}${p.line === null ? '' : `:${p.line}`}${p.seq === null ? '' : ` seq ${p.seq}`}: ${p.reason}\n`)
  }
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`)
  if (r.ok && values['require-sealed'] === true && unsealed.length > 0) {
    process.stdout.write(`FAILED: writer(s) without a closing digest: ${unsealed.map((w) => w.writer).join(', ')}\n`)
    return 1
  }
  return r.ok ? 0 : 1
}

/** One line per writer: records, first and last time, newest digest, whether the tail is vouched for. */
function writerTable (writers: WriterSummary[]): string {
  const rows = writers.map((w) => [
    w.writer, String(w.records), w.firstTs ?? '-', w.lastTs ?? '-',
    w.lastDigest === null ? '-' : `#${w.lastDigest.digestSeq} ${w.lastDigest.signed ? 'signed' : 'UNSIGNED'}${w.lastDigest.final ? ' final' : ''}${w.lastDigest.timestamped ? ' timestamped' : ''}`,
    w.tail === 'uncovered' ? 'UNCOVERED (no closing digest)' : w.tail
  ])
  const head = ['writer', 'records', 'first', 'last', 'newest digest', 'tail']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  return [head, ...rows].map((r) => '  ' + r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n'
}

export function filterFrom (v: Record<string, string | boolean | string[] | undefined>): RecordFilter {
  const s = (k: string): string | undefined => typeof v[k] === 'string' ? v[k] : undefined
  const flag = (field: string): string => '--' + field.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
  return parseFilter({
    from: s('from'), to: s('to'), country: s('country'), subdivision: s('subdivision'),
    model: s('model'), keyId: s('key-id'), org: s('org'), decision: s('decision')
  }, flag)
}

async function write (out: Writable, chunk: string): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve, reject) => { out.once('drain', resolve); out.once('error', reject) })
}

async function exportCmd (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    dir: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    country: { type: 'string' },
    subdivision: { type: 'string' },
    model: { type: 'string' },
    'key-id': { type: 'string' },
    org: { type: 'string' },
    decision: { type: 'string' },
    format: { type: 'string', default: 'jsonl' },
    'mark-exported': { type: 'boolean' },
    out: { type: 'string' },
    config: { type: 'string', short: 'c' }
  })
  const dir = await auditDir(values.dir, values.config)
  if (dir === undefined) { process.stderr.write(USAGE); return 2 }
  const format = values.format
  if (format !== 'jsonl' && format !== 'csv' && format !== 'parquet') { process.stderr.write('--format: jsonl, csv or parquet\n'); return 2 }
  let filter: RecordFilter
  try { filter = filterFrom(values) } catch (err) { process.stderr.write(`${(err as Error).message}\n`); return 2 }
  if (format === 'parquet') {
    if (values.out === undefined) { process.stderr.write('--format parquet: give --out FILE\n'); return 2 }
    if (values['mark-exported'] === true) { process.stderr.write('--mark-exported: with jsonl, whose lines are the segments\' own bytes\n'); return 2 }
    const r = await exportParquet(dir, filter, values.out)
    process.stderr.write(`export: ${r.rows} record(s) to ${values.out} in ${r.secs.toFixed(2)} s\n`)
    return 0
  }
  const mark = values['mark-exported'] === true
  if (mark && [filter.country, filter.subdivision, filter.model, filter.keyId, filter.org, filter.decision].some((x) => x !== undefined)) {
    process.stderr.write('--mark-exported: only whole segments count as exported; use it with --from/--to at most\n')
    return 2
  }
  const total = await segmentCount(dir, filter)
  const tallies: SegmentTally[] = []
  let lastReport = 0
  const chunks = exportChunks(dir, filter, format as ExportFormat, {
    hashSegments: mark,
    onSegment: (t) => { tallies.push(t) },
    onProgress: (p) => {
      if (Date.now() - lastReport < 1000 && p.segments < total) return
      lastReport = Date.now()
      process.stderr.write(`export: ${p.records} record(s), ${p.segments}/${total} segment(s)\n`)
    }
  })
  const out = values.out === undefined ? process.stdout : createWriteStream(values.out, { flags: 'wx' })
  for await (const c of chunks) await write(out, c)
  if (out !== process.stdout) await new Promise<void>((resolve, reject) => { out.end(() => { resolve() }); out.once('error', reject) })
  if (mark) {
    const marked = await markExported(dir, tallies)
    process.stderr.write(`export: marked ${marked.length} closed segment(s) as exported in ${dir}/exported.jsonl\n`)
  }
  return 0
}
