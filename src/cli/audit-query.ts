import type { Writable } from 'node:stream'
import type { Json } from '@duckdb/node-api'
import { parse } from './args.js'
import { csvCell } from '../audit/export.js'
import { isoBound, type RecordFilter } from '../audit/read.js'
import { QueryError, copyToParquet, openSql, checkSelect } from '../audit/sql.js'
import { filterSql } from '../audit/report-query.js'

export const QUERY_USAGE = `usage:
  geogate audit query DIR "SELECT …" [--format table|csv|jsonl|parquet] [--out FILE] [--from T] [--to T]
      one read-only SELECT over the view \`records\` (every writer's segments, as written); --from/--to read only
      the segments of those UTC days (still filter on ts in the query); parquet needs --out
  geogate audit export --dir DIR --format parquet --out FILE [filters as for jsonl/csv]
`

async function write (out: Writable, chunk: string): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve, reject) => { out.once('drain', resolve); out.once('error', reject) })
}

function cellText (v: Json): string {
  if (v === null) return 'NULL'
  return typeof v === 'object' ? JSON.stringify(v) : String(v)
}

/** Column-aligned text; wide cells are cut at 60 characters (use csv or jsonl for the full values). */
function table (columns: string[], rows: Json[][]): string {
  const cells = rows.map((r) => r.map((v) => { const s = cellText(v); return s.length > 60 ? s.slice(0, 59) + '…' : s }))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => r.map((s, i) => s.padEnd(widths[i] ?? 0)).join('  ').trimEnd() + '\n'
  return line(columns) + line(widths.map((w) => '-'.repeat(w))) + cells.map(line).join('') + `(${rows.length} row${rows.length === 1 ? '' : 's'})\n`
}

export async function queryCmd (argv: string[], auditDir: (d: string | undefined, c: string | undefined) => Promise<string | undefined>): Promise<number> {
  const { values, positionals } = parse(argv, {
    format: { type: 'string', default: 'table' },
    out: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    dir: { type: 'string' },
    config: { type: 'string', short: 'c' }
  }, true)
  const sql = positionals.length === 2 ? positionals[1] : positionals[0]
  const dir = await auditDir(positionals.length === 2 ? positionals[0] : values.dir, values.config)
  const format = values.format
  if (dir === undefined || sql === undefined || !['table', 'csv', 'jsonl', 'parquet'].includes(format)) { process.stderr.write(QUERY_USAGE); return 2 }
  if (format === 'parquet' && values.out === undefined) { process.stderr.write('--format parquet: give --out FILE\n'); return 2 }
  let filter: RecordFilter
  try { filter = { from: isoBound(values.from, '--from'), to: isoBound(values.to, '--to') } } catch (err) { process.stderr.write(`${(err as Error).message}\n`); return 2 }
  const started = Date.now()
  const session = await openSql(dir, { filter, writable: values.out === undefined ? [] : [values.out] })
  try {
    if (format === 'parquet') {
      await checkSelect(session.conn, sql)
      await session.internal(copyToParquet(sql, values.out ?? ''))
      process.stderr.write(`query: wrote ${values.out ?? ''} in ${((Date.now() - started) / 1000).toFixed(2)} s\n`)
      return 0
    }
    const { columns, batches } = await session.stream(sql)
    let n = 0
    if (format === 'table') {
      const rows: Json[][] = []
      for await (const b of batches) rows.push(...b)
      n = rows.length
      await write(process.stdout, table(columns, rows))
    } else {
      if (format === 'csv') await write(process.stdout, columns.map(csvCell).join(',') + '\r\n')
      for await (const b of batches) {
        n += b.length
        await write(process.stdout, b.map((r) => format === 'csv'
          ? r.map((v) => csvCell(v)).join(',') + '\r\n'
          : JSON.stringify(Object.fromEntries(columns.map((c, i) => [c, r[i] ?? null]))) + '\n').join(''))
      }
    }
    process.stderr.write(`query: ${n} row(s) from ${session.files.length} segment(s) in ${((Date.now() - started) / 1000).toFixed(2)} s\n`)
    return 0
  } catch (err) {
    if (err instanceof QueryError || (err instanceof Error && /Error: /.test(err.message))) {
      process.stderr.write(`query: ${err.message}\n`)
      return 2
    }
    throw err
  } finally {
    session.close()
  }
}

/** `audit export --format parquet --out FILE`: the matching records, every column of `records`. */
export async function exportParquet (dir: string, filter: RecordFilter, out: string): Promise<{ rows: number, secs: number }> {
  const started = Date.now()
  const session = await openSql(dir, { filter, writable: [out] })
  try {
    const { where, params } = filterSql(filter)
    const select = `SELECT * FROM records${where.length === 0 ? '' : ' WHERE ' + where.join(' AND ')}`
    const r = await session.internal(copyToParquet(select, out), params)
    return { rows: Number(r.rows[0]?.[0] ?? 0), secs: (Date.now() - started) / 1000 }
  } finally {
    session.close()
  }
}
