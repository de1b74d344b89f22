import { readFile } from 'node:fs/promises'
import type { Writable } from 'node:stream'
import { parse } from './args.js'
import { loadConfig, resolvePath } from '../config/load.js'
import { verifyDir } from '../audit/verify.js'
import { exportChunks, markExported, type ExportFormat } from '../audit/export.js'
import { parseFilter, segmentCount, type RecordFilter, type SegmentTally } from '../audit/read.js'

const USAGE = `usage:
  geogate audit verify DIR [--public-key FILE]... [--json]
      exit 0 when every chain in DIR is intact, else 1 naming the first bad record (file, line, seq)
  geogate audit export --dir DIR [--from T] [--to T] [--country CC] [--subdivision CC-X] [--model M]
                       [--key-id ID] [--org ORG] [--decision allow|deny] [--format jsonl|csv] [--mark-exported]
      matching records to stdout in time order; progress on stderr
  Instead of DIR / --dir, --config FILE (or GEOGATE_CONFIG) uses that configuration's audit.dir.
`

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
  if (sub === 'verify') return await verify(rest)
  if (sub === 'export') return await exportCmd(rest)
  process.stderr.write(USAGE)
  return sub === undefined || sub === '--help' ? 1 : 2
}

async function verify (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    'public-key': { type: 'string', multiple: true },
    json: { type: 'boolean' },
    dir: { type: 'string' },
    config: { type: 'string', short: 'c' }
  }, true)
  const dir = await auditDir(positionals[0] ?? values.dir, values.config)
  if (dir === undefined) { process.stderr.write(USAGE); return 2 }
  const publicKeys = await Promise.all((values['public-key'] ?? []).map(async (f) => await readFile(f, 'utf8')))
  let lastReport = Date.now()
  const r = await verifyDir(dir, {
    publicKeys,
    onProgress: (p) => {
      if (Date.now() - lastReport < 1000) return
      lastReport = Date.now()
      process.stderr.write(`verify: ${p.segments} segment(s), ${p.records} record(s) checked (${p.file})\n`)
    }
  })
  if (values.json === true) process.stdout.write(JSON.stringify(r) + '\n')
  else if (r.ok) {
    process.stdout.write(`ok: ${r.chains} chain(s), ${r.segments} segment(s), ${r.records} record(s), ${r.digests} digest(s) (${r.signedDigests} signed)\n`)
  } else if (r.problem !== null) {
    const p = r.problem
    process.stdout.write(`FAILED: ${p.file}${p.line === null ? '' : `:${p.line}`}${p.seq === null ? '' : ` seq ${p.seq}`}: ${p.reason}\n`)
  }
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`)
  return r.ok ? 0 : 1
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
    config: { type: 'string', short: 'c' }
  })
  const dir = await auditDir(values.dir, values.config)
  if (dir === undefined) { process.stderr.write(USAGE); return 2 }
  const format = values.format
  if (format !== 'jsonl' && format !== 'csv') { process.stderr.write('--format: jsonl or csv\n'); return 2 }
  let filter: RecordFilter
  try { filter = filterFrom(values) } catch (err) { process.stderr.write(`${(err as Error).message}\n`); return 2 }
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
  for await (const c of chunks) await write(process.stdout, c)
  if (mark) {
    const marked = await markExported(dir, tallies)
    process.stderr.write(`export: marked ${marked.length} closed segment(s) as exported in ${dir}/exported.jsonl\n`)
  }
  return 0
}
