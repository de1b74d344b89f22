/**
 * `geogate geodb info [--config F] [--json]`: each layer in service (path, type, build date, age, stale?).
 * `geogate geodb lookup IP [--config F]`: the normalised GeoResult for one address, as JSON.
 */
import pino from 'pino'
import { parse, configPath, loadConfigOrExit } from './args.js'
import { GeoDatabaseError, openGeo } from '../geo/service.js'
import type { GeoDatabaseInfo } from '../geo/types.js'

export const USAGE = 'usage: geogate geodb info [--config FILE] [--json]\n       geogate geodb lookup IP [--config FILE]\n'

function table (rows: GeoDatabaseInfo[], maxAgeDays: number): string {
  const head = ['PATH', 'TYPE', 'BUILD', 'AGE (days)', `STALE (> ${maxAgeDays} d)`]
  const body = rows.map((r) => [r.path, r.databaseType, r.buildEpoch, r.ageDays.toFixed(1), r.stale ? 'STALE' : 'no'])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)))
  return [head, ...body].map((cols) => cols.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n'
}

export async function run (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parse(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, true)
  } catch (err) {
    process.stderr.write(`geogate geodb: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const [sub, ip, ...extra] = positionals
  if (values.help === true) { process.stdout.write(USAGE); return 0 }
  if ((sub !== 'info' && sub !== 'lookup') || (sub === 'lookup' && ip === undefined) || (sub === 'info' && ip !== undefined) || extra.length > 0) {
    process.stderr.write(USAGE)
    return 2
  }
  const file = configPath(values.config)
  const loaded = await loadConfigOrExit(file)
  if (typeof loaded === 'number') return loaded
  const geoConfig = { ...loaded.config.geo, watch: false }
  let geo
  try {
    geo = await openGeo(geoConfig, loaded.baseDir, pino({ level: 'silent' }))
  } catch (err) {
    if (err instanceof GeoDatabaseError) { process.stderr.write(`geogate geodb: ${err.message}\n`); return 1 }
    throw err
  }
  try {
    if (sub === 'info') {
      const info = geo.info()
      process.stdout.write(values.json === true ? JSON.stringify(info, null, 2) + '\n' : table(info, geoConfig.maxAgeDays))
      if (geo.stale()) {
        process.stderr.write(`warning: database older than geo.maxAgeDays (${geoConfig.maxAgeDays})` +
          (geoConfig.failClosedWhenStale ? '; geo.failClosedWhenStale: every location resolves as unknown\n' : '\n'))
      }
      return 0
    }
    const result = geo.lookup(ip ?? '')
    const databases = geo.info().map((i) => ({ path: i.path, databaseType: i.databaseType, buildEpoch: i.buildEpoch, stale: i.stale }))
    process.stdout.write(JSON.stringify({ ip, ...result, databases }, null, 2) + '\n')
    return result.unknownReason === 'invalid_ip' ? 1 : 0
  } finally {
    await geo.close()
  }
}
