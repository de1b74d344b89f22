import pino from 'pino'
import { parse, configPath, loadConfigOrExit } from './args.js'
import { openGeo } from '../geo/service.js'
import { snapshotFromConfig } from '../policy/snapshot.js'
import { applySchedule } from '../config/schedule.js'
import { explain, formatTrace, ExplainError } from '../policy/explain.js'

const USAGE = 'usage: geogate explain --ip IP --key-id ID --model M [--endpoint E] [--tools] [--stream] [--max-tokens N] [--at TIME] [--json] [--config FILE]\n'

/**
 * `geogate explain`: the decision for IP X, key Y, model Z, against the configuration file and its databases.
 * Exit 0 when the decision was explained (whatever it is), 1 on a bad config or query, 2 on usage errors.
 * Keys added through the admin API live in Redis: explain those with GET /admin/explain.
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
      json: { type: 'boolean' }
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
    process.stdout.write(values.json === true ? JSON.stringify(trace, null, 2) + '\n' : formatTrace(trace))
    return 0
  } catch (err) {
    if (err instanceof ExplainError) { process.stderr.write(`geogate explain: ${err.message}\n`); return 1 }
    throw err
  } finally {
    await geo.close()
  }
}
