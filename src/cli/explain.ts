import pino from 'pino'
import { parse, configPath, loadConfigOrExit } from './args.js'
import { openGeo } from '../geo/service.js'
import { snapshotFromConfig } from '../policy/snapshot.js'
import { applySchedule } from '../config/schedule.js'
import { explain, formatTrace, ExplainError, type ExplainTrace } from '../policy/explain.js'

export const USAGE = `usage: geogate explain --ip IP --key-id ID --model M [--endpoint E] [--tools] [--stream] [--max-tokens N] [--at TIME] [--json]
                       [--config FILE | --admin-url URL]
  the decision for that caller, key and model, with its trace. With --admin-url (token: GEOGATE_ADMIN_TOKEN, an
  admin or auditor token) the running gateway answers with its live policy: file plus admin changes. Without it,
  the file only: keys, tiers and locations changed through the admin API are not seen.
`

/** Ask a running gateway (GET /admin/explain): its live policy and the databases it has in service. */
async function explainLive (base: string, q: Record<string, string | undefined>): Promise<{ trace: ExplainTrace } | { error: string }> {
  const token = process.env.GEOGATE_ADMIN_TOKEN
  if (token === undefined || token === '') return { error: 'set GEOGATE_ADMIN_TOKEN to an admin or auditor token to ask the gateway' }
  const qs = new URLSearchParams()
  for (const [k, v] of Object.entries(q)) if (v !== undefined) qs.set(k, v)
  let res: Response
  try {
    res = await fetch(`${base}/admin/explain?${qs.toString()}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) })
  } catch (err) {
    return { error: `cannot reach the gateway's admin API at ${base}: ${err instanceof Error ? err.message : String(err)}` }
  }
  const body = await res.json().catch(() => null) as { error?: { message?: string } } | null
  if (!res.ok) return { error: `the gateway at ${base} answered ${res.status}: ${body?.error?.message ?? 'no message'}` }
  return { trace: body as unknown as ExplainTrace }
}

/**
 * `geogate explain`: the decision for IP X, key Y, model Z — against a running gateway's live policy with
 * --admin-url, else against the configuration file alone (and it says so: live overrides are not seen).
 * Exit 0 when the decision was explained (whatever it is), 1 on a bad config or query, 2 on usage errors.
 */
export async function run (argv: string[]): Promise<number> {
  let values
  try {
    values = parse(argv, {
      config: { type: 'string', short: 'c' },
      ip: { type: 'string' },
      'key-id': { type: 'string' },
      model: { type: 'string' },
      endpoint: { type: 'string' },
      tools: { type: 'boolean' },
      stream: { type: 'boolean' },
      'max-tokens': { type: 'string' },
      at: { type: 'string' },
      json: { type: 'boolean' },
      'admin-url': { type: 'string' }
    }).values
  } catch (err) {
    process.stderr.write(`geogate explain: ${(err as Error).message}\n${USAGE}`)
    return 2
  }
  const { ip, model } = values
  const keyId = values['key-id']
  if (ip === undefined || keyId === undefined || model === undefined) {
    process.stderr.write(`geogate explain: --ip, --key-id and --model are required\n${USAGE}`)
    return 2
  }
  let maxTokens: number | undefined
  if (values['max-tokens'] !== undefined) {
    maxTokens = Number(values['max-tokens'])
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 0) { process.stderr.write('geogate explain: --max-tokens must be a non-negative integer\n'); return 2 }
  }
  const adminUrl = values['admin-url']?.replace(/\/+$/, '')
  if (adminUrl !== undefined) {
    if (values.config !== undefined) { process.stderr.write(`geogate explain: --config and --admin-url are exclusive\n${USAGE}`); return 2 }
    const live = await explainLive(adminUrl, {
      ip, keyId, model, endpoint: values.endpoint, tools: values.tools === true ? 'true' : undefined,
      stream: values.stream === true ? 'true' : undefined, maxTokens: values['max-tokens'], at: values.at
    })
    if ('error' in live) { process.stderr.write(`geogate explain: ${live.error}\n`); return 1 }
    const source = { kind: 'live', adminUrl, policy: live.trace.policy }
    process.stdout.write(values.json === true
      ? JSON.stringify({ ...live.trace, source }, null, 2) + '\n'
      : `source: the running gateway at ${adminUrl} (live policy: file plus admin changes)\n` + formatTrace(live.trace))
    return 0
  }
  let at: number | null = null
  if (values.at !== undefined) {
    at = Date.parse(values.at)
    if (Number.isNaN(at)) { process.stderr.write(`geogate explain: --at: not a date and time: ${values.at}\n`); return 2 }
  }
  const file = configPath(values.config)
  const loaded = await loadConfigOrExit(file)
  if (typeof loaded === 'number') return loaded
  const geo = await openGeo(loaded.config.geo, loaded.baseDir, pino({ level: 'silent' }))
  try {
    // The policy as of --at (its schedule applied up to then), or as of now.
    const policy = snapshotFromConfig(applySchedule(loaded.config, at ?? Date.now()))
    const trace = explain(policy, geo, { ip, keyId, model, endpoint: values.endpoint, tools: values.tools, stream: values.stream, maxTokens }, loaded.config.backends,
      at === null ? null : new Date(at).toISOString())
    const note = `file only (${file}): keys, tiers and locations changed through a running gateway's admin API are not seen; ask it with --admin-url`
    process.stdout.write(values.json === true
      ? JSON.stringify({ ...trace, source: { kind: 'file', file, note } }, null, 2) + '\n'
      : `source: ${note}\n` + formatTrace(trace))
    return 0
  } catch (err) {
    if (err instanceof ExplainError) { process.stderr.write(`geogate explain: ${err.message}\n`); return 1 }
    throw err
  } finally {
    await geo.close()
  }
}
