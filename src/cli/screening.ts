/** `geogate screening import FILE | info | check`: the denied-party list of a running gateway. */
import { readFile, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { parse } from './args.js'

const USAGE = `usage: geogate screening <command> [--admin-url URL] [--json]

  import FILE [--date YYYY-MM-DD] [--format us-csl-csv|us-csl-json] [--force]
                      load a list (the Consolidated Screening List's consolidated.csv or consolidated.json);
                      a malformed file is refused with its line and field and the list in service is kept;
                      then every key is re-screened. --date: the list's date when the file carries none
                      (default: the file's modification time); --force: accept a list much shorter than
                      the one in service
  info                the list in service: date, rows, entries, sources, age, stale
  check --org ORG [--country CC] [--domain D]
                      what screening says about an organisation (verdict and matches, with scores)

Talks to a running gateway's admin API: --admin-url (or GEOGATE_ADMIN_URL, default http://127.0.0.1:9090),
with the token from GEOGATE_ADMIN_TOKEN (import needs the admin role). With Redis every replica uses the
imported list within seconds.
`

interface ApiError { error?: { message?: string, issues?: Array<{ path: string, message: string }> } }
interface Info { version: number, date: string, rows: number, entries: number, names: number, format: string, ageDays: number, stale: boolean, sources: Record<string, number>, importedAt: string, file: string | null }

function printInfo (i: Info): void {
  const rows: Array<[string, string]> = [
    ['version', String(i.version)], ['date', i.date], ['age', `${i.ageDays.toFixed(1)} days${i.stale ? ' (STALE)' : ''}`],
    ['rows', String(i.rows)], ['entries', String(i.entries)], ['names', `${i.names} (names and alt names indexed)`],
    ['format', i.format], ['file', i.file ?? '-'], ['imported', i.importedAt],
    ...Object.entries(i.sources).sort((a, b) => b[1] - a[1]).map(([s, n]): [string, string] => ['source', `${n}  ${s}`])
  ]
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(10)} ${v}\n`)
}

export async function run (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parse(argv, {
      'admin-url': { type: 'string' },
      date: { type: 'string' },
      format: { type: 'string' },
      force: { type: 'boolean' },
      org: { type: 'string' },
      country: { type: 'string' },
      domain: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    }, true)
  } catch (err) {
    process.stderr.write(`geogate screening: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const [cmd, arg] = positionals
  if (values.help === true || cmd === undefined) {
    process.stdout.write(USAGE)
    return values.help === true ? 0 : 2
  }
  const base = (values['admin-url'] ?? process.env.GEOGATE_ADMIN_URL ?? 'http://127.0.0.1:9090').replace(/\/+$/, '')
  const token = process.env.GEOGATE_ADMIN_TOKEN
  if (token === undefined || token === '') {
    process.stderr.write('geogate screening: set GEOGATE_ADMIN_TOKEN to an admin token\n')
    return 2
  }
  const fail = (status: number, json: unknown): number => {
    const e = (json as ApiError).error
    process.stderr.write(`geogate screening: ${status} ${e?.message ?? 'request failed'}\n`)
    for (const i of e?.issues ?? []) process.stderr.write(`  ${i.path}: ${i.message}\n`)
    return 1
  }
  const call = async (method: string, path: string, body?: string, type?: string): Promise<{ status: number, json: unknown }> => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, ...(type === undefined ? {} : { 'content-type': type }) }, ...(body === undefined ? {} : { body }) })
    const text = await res.text()
    let json: unknown
    try { json = JSON.parse(text) } catch { json = { error: { message: text } } }
    return { status: res.status, json }
  }
  try {
    if (cmd === 'import') {
      if (arg === undefined) { process.stderr.write(`geogate screening import: which file?\n\n${USAGE}`); return 2 }
      let text: string
      let mtime: Date
      try {
        text = await readFile(arg, 'utf8')
        mtime = (await stat(arg)).mtime
      } catch (err) {
        process.stderr.write(`geogate screening import: cannot read ${arg}: ${err instanceof Error ? err.message : String(err)}\n`)
        return 1
      }
      process.stderr.write(`uploading ${arg} (${(text.length / 1048576).toFixed(1)} MiB)…\n`)
      const qs = new URLSearchParams({ name: basename(arg), date: values.date ?? mtime.toISOString() })
      if (values.format !== undefined) qs.set('format', values.format)
      if (values.force === true) qs.set('force', 'true')
      const type = /\.json$/i.test(arg) ? 'application/json' : 'text/csv'
      const r = await call('POST', `/admin/screening/import?${qs.toString()}`, text, type)
      if (r.status !== 200) return fail(r.status, r.json)
      if (values.json === true) { process.stdout.write(JSON.stringify(r.json) + '\n'); return 0 }
      const out = r.json as { list: Info, rescreen: { screened: number, suspended: Array<{ id: string, org: string, match: { entryName: string, score: number } }>, review: Array<{ id: string, org: string, match: { entryName: string, score: number } }>, failed: Array<{ id: string, error: string }> } }
      printInfo(out.list)
      const rs = out.rescreen
      process.stdout.write(`re-screened ${rs.screened} key(s): ${rs.suspended.length} suspended, ${rs.review.length} sent to review, ${rs.failed.length} failed\n`)
      for (const s of rs.suspended) process.stdout.write(`  suspended ${s.id} (${s.org}): ${s.match.entryName}, score ${s.match.score}\n`)
      for (const s of rs.review) process.stdout.write(`  review    ${s.id} (${s.org}): ${s.match.entryName}, score ${s.match.score}\n`)
      for (const s of rs.failed) process.stdout.write(`  FAILED    ${s.id}: ${s.error}\n`)
      return rs.failed.length > 0 ? 1 : 0
    }
    if (cmd === 'info') {
      const r = await call('GET', '/admin/screening')
      if (r.status !== 200) return fail(r.status, r.json)
      const list = (r.json as { list: Info | null }).list
      if (values.json === true) { process.stdout.write(JSON.stringify(list) + '\n'); return 0 }
      if (list === null) { process.stdout.write('no screening list imported\n'); return 1 }
      printInfo(list)
      return list.stale ? 1 : 0
    }
    if (cmd === 'check') {
      if (values.org === undefined) { process.stderr.write(`geogate screening check: --org is required\n\n${USAGE}`); return 2 }
      const qs = new URLSearchParams({ org: values.org })
      if (values.country !== undefined) qs.set('country', values.country)
      if (values.domain !== undefined) qs.set('domain', values.domain)
      const r = await call('GET', `/admin/screening/check?${qs.toString()}`)
      if (r.status !== 200) return fail(r.status, r.json)
      if (values.json === true) { process.stdout.write(JSON.stringify(r.json) + '\n'); return 0 }
      const res = r.json as { verdict: string, matches: Array<{ entryId: string, entryName: string, matchedName: string, source: string, score: number }> }
      process.stdout.write(`${res.verdict}\n`)
      for (const m of res.matches) process.stdout.write(`  ${m.score.toFixed(3)}  ${m.entryName} (${m.entryId}; matched "${m.matchedName}") on ${m.source}\n`)
      return 0
    }
  } catch (err) {
    process.stderr.write(`geogate screening: cannot reach the admin API at ${base}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
  process.stderr.write(`geogate screening: unknown command "${cmd}"\n\n${USAGE}`)
  return 2
}
