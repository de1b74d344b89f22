import { join, resolve } from 'node:path'
import type { DuckDBConnection, DuckDBValue, Json } from '@duckdb/node-api'
import { listSegments, type SegmentName } from './segments.js'
import { segmentInRange, type RecordFilter } from './read.js'
import { loadOptional } from '../core/optional.js'

/**
 * SQL over the audit log, on an embedded DuckDB (in memory: nothing is ever written into the audit directory).
 * The JSONL segments stay the evidence of record; the engine reads them as they are, through one view:
 *
 *   records   every line of every writer's segments (interactions, admin changes, system events), typed by an
 *             explicit column schema (no sampling, so a rare field never changes a column's type), plus
 *             `segment` (the file name) and `time` (ts as TIMESTAMPTZ, NULL when unparseable)
 *
 * A session only runs one SELECT at a time (no COPY, no SET, no DDL), and the engine is locked to the segment
 * files it was opened on (enable_external_access off, allowed_paths the segments): a query cannot read other
 * files or write anywhere. `verify` does not use any of this: it checks the bytes itself.
 *
 * DuckDB (~35 MB of RSS once mapped) is imported on the first session, not at boot: serve needs it only for the
 * admin query and report endpoints.
 */

async function duckdb (): Promise<typeof import('@duckdb/node-api')> {
  return await loadOptional('@duckdb/node-api', 'SQL over the audit log (audit query, reports)', async () => await import('@duckdb/node-api'))
}

/** The view's columns, in the order the contract lists them (SPEC.md, "Audit record"), then the additions. */
export const RECORD_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['kind', 'VARCHAR'], ['ts', 'VARCHAR'], ['requestId', 'VARCHAR'], ['keyId', 'VARCHAR'], ['org', 'VARCHAR'],
  ['ip', 'VARCHAR'], ['country', 'VARCHAR'], ['subdivision', 'VARCHAR'], ['anonymizer', 'VARCHAR[]'],
  ['geodbBuild', 'VARCHAR'], ['model', 'VARCHAR'], ['classification', 'VARCHAR'], ['servingRegion', 'VARCHAR'],
  ['endpoint', 'VARCHAR'], ['crossBorder', 'BOOLEAN'], ['decision', 'VARCHAR'], ['rule', 'VARCHAR'],
  ['status', 'INTEGER'], ['tokensIn', 'BIGINT'], ['tokensOut', 'BIGINT'], ['latencyMs', 'DOUBLE'],
  ['policyVersion', 'VARCHAR'], ['locationTier', 'VARCHAR'], ['keyTier', 'VARCHAR'], ['degraded', 'BOOLEAN'],
  ['shadow', 'BOOLEAN'], ['outcome', 'VARCHAR'], ['upstreamStatus', 'INTEGER'], ['stream', 'BOOLEAN'],
  ['tokensEstimated', 'BOOLEAN'], ['actor', 'VARCHAR'], ['role', 'VARCHAR'], ['action', 'VARCHAR'],
  ['target', 'VARCHAR'], ['before', 'JSON'], ['after', 'JSON'], ['event', 'VARCHAR'], ['detail', 'JSON'],
  ['writer', 'VARCHAR'], ['seq', 'BIGINT'], ['prev', 'VARCHAR'], ['hash', 'VARCHAR'],
  // geo | unknown | internal (absent in records written before it)
  ['location', 'VARCHAR']
]

export interface SqlSession {
  /** Segment files the view reads, in writer then chain order. */
  readonly files: readonly string[]
  /** The one connection; interrupt() it to stop a running query. */
  readonly conn: DuckDBConnection
  /** Run one SELECT (checked); rows as JSON-safe values (BIGINT and HUGEINT as strings). */
  select: (sql: string, params?: DuckDBValue[]) => Promise<SelectResult>
  /** One SELECT (checked), streamed in chunks of rows: for results larger than memory. */
  stream: (sql: string, params?: DuckDBValue[]) => Promise<StreamResult>
  /** Our own statements (the report, exports): not checked, not for user text. */
  internal: (sql: string, params?: DuckDBValue[]) => Promise<SelectResult>
  close: () => void
}

export interface SelectResult { columns: string[], rows: Json[][] }

export interface StreamResult { columns: string[], batches: AsyncIterable<Json[][]> }

export interface SqlOptions {
  /** only the segments that can hold records in this time range (whole UTC days) */
  filter?: RecordFilter
  /** files the engine may also write (an export's output) */
  writable?: string[]
  /** DuckDB worker threads; default: all cores */
  threads?: number
}

export class QueryError extends Error { override name = 'QueryError' }

function sqlString (s: string): string { return "'" + s.replace(/'/g, "''") + "'" }

function quoteIdent (s: string): string { return '"' + s.replace(/"/g, '""') + '"' }

/** The SELECT that defines `records` over these files. */
function recordsView (files: string[]): string {
  if (files.length === 0) {
    // read_json needs at least one file: the same columns, no rows.
    return 'SELECT ' + RECORD_COLUMNS.map(([n, t]) => `CAST(NULL AS ${t}) AS ${quoteIdent(n)}`).join(', ') +
      ', CAST(NULL AS VARCHAR) AS segment, CAST(NULL AS TIMESTAMPTZ) AS "time" WHERE false'
  }
  const struct = '{' + RECORD_COLUMNS.map(([n, t]) => `${sqlString(n)}: ${sqlString(t)}`).join(', ') + '}'
  // ignore_errors: a damaged line is verify's business, as in the JSONL scan the report used to be.
  return `SELECT * EXCLUDE (filename), parse_filename(filename) AS segment, TRY_CAST(ts AS TIMESTAMPTZ) AS "time" FROM read_json([${files.map(sqlString).join(', ')}], ` +
    `format = 'newline_delimited', columns = ${struct}, filename = true, ignore_errors = true, maximum_object_size = 16777216)`
}

/** Segment files of every writer, optionally only those that can hold records in the filter's time range. */
export async function segmentFiles (dir: string, filter: RecordFilter = {}): Promise<string[]> {
  const out: string[] = []
  for (const segs of (await listSegments(dir)).values()) {
    for (const s of segs as SegmentName[]) if (segmentInRange(s, filter)) out.push(resolve(join(dir, s.file)))
  }
  return out
}

export async function openSql (dir: string, opts: SqlOptions = {}): Promise<SqlSession> {
  const { DuckDBInstance } = await duckdb()
  const files = await segmentFiles(dir, opts.filter)
  const db = await DuckDBInstance.create(':memory:', opts.threads === undefined ? {} : { threads: String(opts.threads) })
  const conn = await db.connect()
  const paths = [...files, ...(opts.writable ?? []).map((f) => resolve(f))]
  try {
    await conn.run(`CREATE TEMP VIEW records AS ${recordsView(files)}`)
    // Locked down after the view exists: reads of exactly these files, writes of exactly the export's output.
    await conn.run(`SET allowed_paths = [${paths.map(sqlString).join(', ')}]`)
    await conn.run('SET enable_external_access = false')
    await conn.run('SET lock_configuration = true')
  } catch (err) {
    conn.closeSync()
    db.closeSync()
    throw err
  }
  const run = async (sql: string, params?: DuckDBValue[]): Promise<SelectResult> => {
    const reader = await conn.runAndReadAll(sql, params)
    return { columns: reader.columnNames(), rows: reader.getRowsJson() }
  }
  return {
    files,
    conn,
    internal: run,
    select: async (sql, params) => { await checkSelect(conn, sql); return await run(sql, params) },
    stream: async (sql, params) => {
      await checkSelect(conn, sql)
      const result = await conn.stream(sql, params)
      return { columns: result.columnNames(), batches: result.yieldRowsJson() }
    },
    close: () => { conn.closeSync(); db.closeSync() }
  }
}

/** One statement, and a SELECT (WITH … SELECT, VALUES, FROM-first included); anything else is refused. */
export async function checkSelect (conn: DuckDBConnection, sql: string): Promise<void> {
  const { StatementType } = await duckdb()
  let stmts
  try { stmts = await conn.extractStatements(sql) } catch (err) { throw new QueryError((err as Error).message) }
  if (stmts.count !== 1) throw new QueryError(`one SELECT statement, found ${stmts.count} statement(s)`)
  let prepared
  try { prepared = await stmts.prepare(0) } catch (err) { throw new QueryError((err as Error).message) }
  if (prepared.statementType !== StatementType.SELECT) throw new QueryError('only SELECT queries: the audit log is read-only here')
}

/** A user's SELECT with a row cap: one more row than the cap is fetched, to tell whether it was cut. */
export function limited (sql: string, rows: number): string {
  return `SELECT * FROM (${sql.trim().replace(/;\s*$/, '')}) LIMIT ${rows + 1}`
}

/** `COPY (SELECT …) TO file (FORMAT parquet)`: zstd, row groups of ~122k rows (DuckDB's default). */
export function copyToParquet (select: string, out: string): string {
  return `COPY (${select.trim().replace(/;\s*$/, '')}) TO ${sqlString(resolve(out))} (FORMAT parquet, COMPRESSION zstd)`
}

/** Run a query with a deadline: the connection is interrupted when it passes. */
export async function withTimeout<T> (session: SqlSession, ms: number, work: () => Promise<T>): Promise<T> {
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; session.conn.interrupt() }, ms)
  try {
    return await work()
  } catch (err) {
    if (timedOut) throw new QueryError(`query interrupted after ${ms} ms`)
    throw err
  } finally {
    clearTimeout(timer)
  }
}

export { sqlString, quoteIdent }
