import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Runtime } from '../runtime.js'
import { requireRole } from './auth.js'
import { BadRequestError, NotFoundError } from '../core/errors.js'
import { exportChunks } from '../audit/export.js'
import { parseFilter, type RecordFilter } from '../audit/read.js'
import { verifyDir } from '../audit/verify.js'
import { buildReport, reportCsv, reportHtml } from '../audit/report.js'
import { QueryError, checkSelect, limited, openSql, withTimeout } from '../audit/sql.js'

interface AuditQuery {
  from?: string, to?: string, country?: string, subdivision?: string, model?: string, keyId?: string, org?: string,
  decision?: string, format?: string
}

function filterOf (q: AuditQuery): RecordFilter {
  try {
    return parseFilter(q)
  } catch (err) {
    throw new BadRequestError((err as Error).message)
  }
}

function download (reply: FastifyReply, type: string, name: string): void {
  reply.type(type).header('content-disposition', `attachment; filename="${name}"`).header('cache-control', 'no-store')
}

/**
 * GET /admin/audit, GET /admin/audit/verify, GET /admin/audit/public-key, GET /admin/reports/usage.
 * Roles admin and auditor; read-only (GET only, nothing here writes); exports stream from the segments.
 */
export async function registerAudit (admin: FastifyInstance, rt: Runtime): Promise<void> {
  const readers = requireRole(() => rt.config.admin, 'admin', 'auditor')

  admin.get<{ Querystring: AuditQuery }>('/admin/audit', { preHandler: readers }, async (request, reply) => {
    const q = request.query
    const format = q.format ?? 'jsonl'
    if (format !== 'jsonl' && format !== 'csv') throw new BadRequestError('format: jsonl or csv')
    const filter = filterOf(q)
    // What is queued is written first, so an export asked for right after an interaction holds it.
    await rt.audit.flush()
    download(reply, format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson', `audit.${format}`)
    return await reply.send(Readable.from(exportChunks(rt.audit.dir, filter, format)))
  })

  // One read-only SELECT over the view `records` (see audit/sql.ts), capped in rows and time. GET, since an
  // auditor's token may only read; the SQL comes in the query string (?sql=…).
  admin.get<{ Querystring: { sql?: string, limit?: string } }>('/admin/audit/query', { preHandler: readers }, async (request) => {
    const sql = request.query.sql
    if (sql === undefined || sql.trim() === '') throw new BadRequestError('sql: one SELECT over the view records')
    const max = rt.config.audit.query.maxRows
    const asked = request.query.limit === undefined ? max : Number(request.query.limit)
    if (!Number.isInteger(asked) || asked < 1) throw new BadRequestError('limit: a positive integer')
    const limit = Math.min(asked, max)
    await rt.audit.flush()
    const started = Date.now()
    // One engine thread: an auditor's query must not take the cores the data plane is serving on.
    const session = await openSql(rt.audit.dir, { threads: 1 })
    try {
      const r = await withTimeout(session, rt.config.audit.query.timeoutMs, async () => {
        await checkSelect(session.conn, sql) // one SELECT, before it is wrapped in the row cap
        return await session.internal(limited(sql, limit))
      })
      const truncated = r.rows.length > limit
      const rows = truncated ? r.rows.slice(0, limit) : r.rows
      return { columns: r.columns, rows, rowCount: rows.length, truncated, limit, elapsedMs: Date.now() - started }
    } catch (err) {
      if (err instanceof QueryError || (err instanceof Error && /^[A-Z][A-Za-z ]*Error: /.test(err.message))) throw new BadRequestError(`query: ${err.message}`)
      throw err
    } finally {
      session.close()
    }
  })

  admin.get('/admin/audit/verify', { preHandler: readers }, async () => {
    await rt.audit.flush()
    const started = Date.now()
    const r = await verifyDir(rt.audit.dir, { live: true })
    return { ...r, dir: rt.audit.dir, writer: rt.audit.writer, durationMs: Date.now() - started }
  })

  admin.get('/admin/audit/public-key', { preHandler: readers }, async (_request, reply) => {
    if (rt.audit.publicKeyPem === null) throw new NotFoundError('No audit signing key is configured (audit.signingKey)')
    reply.type('application/x-pem-file')
    return rt.audit.publicKeyPem
  })

  admin.get<{ Querystring: AuditQuery & { period?: string } }>('/admin/reports/usage', { preHandler: readers }, async (request, reply) => {
    const q = request.query
    const format = q.format ?? 'json'
    if (format !== 'json' && format !== 'csv' && format !== 'html') throw new BadRequestError('format: json, csv or html')
    const period = q.period ?? new Date().toISOString().slice(0, 7)
    const filter = filterOf(q)
    await rt.audit.flush()
    let report
    try {
      report = await buildReport(rt.audit.dir, period, { country: filter.country, model: filter.model, keyId: filter.keyId, org: filter.org })
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('period')) throw new BadRequestError(err.message)
      throw err
    }
    if (format === 'json') return report
    if (format === 'csv') {
      download(reply, 'text/csv; charset=utf-8', `usage-${period}.csv`)
      return reportCsv(report)
    }
    reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    return reportHtml(report, `audit log of ${rt.audit.writer}`)
  })
}
