import { parse } from './args.js'

const USAGE = `usage: geogate keys <command> [--admin-url URL] [--json]

  create --org ORG --tier TIER [--country CC] [--domain D] [--verified] [--id ID]
                      create a key; its raw value is printed once and never stored. The organisation is
                      screened first: a listed one gets no key (403 party_restricted, the entry named),
                      a possible match gets a key in review that calls nothing until cleared
  clear ID --reason TEXT
                      clear a key in review or suspended (who and why go into the audit log)
  list                the keys (no secrets)
  rotate ID           a new raw key for ID (printed once); the old one stops working at once
  revoke ID           the key stops working at once

Talks to a running gateway's admin API: --admin-url (or GEOGATE_ADMIN_URL, default http://127.0.0.1:9090),
with the admin token from GEOGATE_ADMIN_TOKEN. Changes reach every replica sharing its Redis within a second.
`

interface ApiError { error?: { message?: string, issues?: Array<{ path: string, message: string }> } }

/** `geogate keys create|list|rotate|revoke` against the admin API. */
export async function run (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parse(argv, {
      'admin-url': { type: 'string' },
      org: { type: 'string' },
      tier: { type: 'string' },
      country: { type: 'string' },
      domain: { type: 'string' },
      reason: { type: 'string' },
      verified: { type: 'boolean' },
      id: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    }, true)
  } catch (err) {
    process.stderr.write(`geogate keys: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const [cmd, arg] = positionals
  if (values.help === true || cmd === undefined) {
    process.stdout.write(USAGE)
    return cmd === undefined && values.help !== true ? 2 : 0
  }
  const base = (values['admin-url'] ?? process.env.GEOGATE_ADMIN_URL ?? 'http://127.0.0.1:9090').replace(/\/+$/, '')
  const token = process.env.GEOGATE_ADMIN_TOKEN
  if (token === undefined || token === '') {
    process.stderr.write('geogate keys: set GEOGATE_ADMIN_TOKEN to an admin token (an auditor token can only list)\n')
    return 2
  }
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number, json: unknown }> => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await res.text()
    let json: unknown = null
    try { json = JSON.parse(text) } catch { json = { error: { message: text } } }
    return { status: res.status, json }
  }
  const fail = (status: number, json: unknown): number => {
    const e = (json as ApiError).error
    process.stderr.write(`geogate keys: ${status} ${e?.message ?? 'request failed'}\n`)
    for (const i of e?.issues ?? []) process.stderr.write(`  ${i.path || '/'}: ${i.message}\n`)
    return 1
  }
  const printKey = (json: unknown, verb: string): void => {
    const k = json as { id: string, key: string }
    if (values.json === true) { process.stdout.write(JSON.stringify(json) + '\n'); return }
    process.stdout.write(`${k.key}\n`)
    process.stderr.write(`key "${k.id}" ${verb}. The line above is the raw key: it is shown this once and not stored anywhere.\n`)
  }

  try {
    if (cmd === 'create') {
      if (values.org === undefined || values.tier === undefined) {
        process.stderr.write(`geogate keys create: --org and --tier are required\n\n${USAGE}`)
        return 2
      }
      const body: Record<string, unknown> = { org: values.org, tier: values.tier }
      if (values.country !== undefined) body.country = values.country
      if (values.domain !== undefined) body.domain = values.domain
      if (values.verified === true) body.verifiedEntity = true
      if (values.id !== undefined) body.id = values.id
      const r = await call('POST', '/admin/keys', body)
      if (r.status !== 201) {
        for (const m of (r.json as { error?: { matches?: Array<{ entryName: string, entryId: string, source: string, score: number }> } }).error?.matches ?? []) {
          process.stderr.write(`  ${m.score.toFixed(3)}  ${m.entryName} (${m.entryId}) on ${m.source}\n`)
        }
        return fail(r.status, r.json)
      }
      printKey(r.json, 'created')
      if ((r.json as { status?: string }).status === 'review') process.stderr.write('The organisation is a possible match on a restricted-party list: the key is in review and calls nothing until an admin clears it (geogate keys clear ID --reason …).\n')
      return 0
    }
    if (cmd === 'list') {
      const r = await call('GET', '/admin/keys')
      if (r.status !== 200) return fail(r.status, r.json)
      const keys = (r.json as { keys: Array<Record<string, unknown>> }).keys
      if (values.json === true) { process.stdout.write(JSON.stringify(keys) + '\n'); return 0 }
      const cols = ['id', 'org', 'tier', 'country', 'verifiedEntity', 'status', 'source', 'fingerprint'] as const
      const rows = [cols.map(String), ...keys.map((k) => cols.map((c) => String(k[c] ?? '-')))]
      const widths = cols.map((_c, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
      for (const row of rows) process.stdout.write(row.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd() + '\n')
      return 0
    }
    if (cmd === 'clear') {
      if (arg === undefined || values.reason === undefined) {
        process.stderr.write('geogate keys clear: give the key id and --reason\n')
        return 2
      }
      const r = await call('POST', `/admin/keys/${encodeURIComponent(arg)}/clear`, { reason: values.reason })
      if (r.status !== 200) return fail(r.status, r.json)
      process.stdout.write(values.json === true ? JSON.stringify(r.json) + '\n' : `key "${arg}" cleared\n`)
      return 0
    }
    if (cmd === 'rotate' || cmd === 'revoke') {
      if (arg === undefined) {
        process.stderr.write(`geogate keys ${cmd}: which key id?\n`)
        return 2
      }
      const id = encodeURIComponent(arg)
      const r = cmd === 'rotate' ? await call('POST', `/admin/keys/${id}/rotate`) : await call('DELETE', `/admin/keys/${id}`)
      if (r.status !== 200) return fail(r.status, r.json)
      if (cmd === 'rotate') printKey(r.json, 'rotated (the previous key no longer works)')
      else process.stdout.write(values.json === true ? JSON.stringify(r.json) + '\n' : `key "${arg}" revoked\n`)
      return 0
    }
  } catch (err) {
    process.stderr.write(`geogate keys: cannot reach the admin API at ${base}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
  process.stderr.write(`geogate keys: unknown command "${cmd}"\n\n${USAGE}`)
  return 2
}
