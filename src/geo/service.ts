import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import maxmind, { type Reader, type Response } from 'maxmind'
import type { Logger } from 'pino'
import type { GeoConfig } from '../config/schema/index.js'
import { resolvePath } from '../config/load.js'
import { type GeoDatabaseInfo, type GeoLookup, type GeoResult, unknownGeo } from './types.js'

/** The embedded default: the CC BY 4.0 country database that `npm ci` installs. */
export function embeddedDatabasePath (): string {
  const require = createRequire(import.meta.url)
  return join(dirname(require.resolve('@ip-location-db/geo-whois-asn-country-mmdb/package.json')), 'geo-whois-asn-country.mmdb')
}

/**
 * Open the configured layers. TODO(issue 3): GeoIP2 schema, layering, anonymizers, hot swap, staleness.
 */
export async function openGeo (config: Readonly<GeoConfig>, baseDir: string, _log: Logger): Promise<GeoLookup> {
  const paths = config.databases?.map((p) => resolvePath(baseDir, p)) ?? [embeddedDatabasePath()]
  const readers: Array<Reader<Response>> = []
  for (const p of paths) readers.push(await maxmind.open<Response>(p))
  const build = readers.length > 0 ? new Date(Math.min(...readers.map((r) => r.metadata.buildEpoch.getTime()))).toISOString() : null
  return {
    lookup (ip: string): GeoResult {
      const g = unknownGeo(build)
      for (const r of readers) {
        const rec = r.get(ip) as Record<string, unknown> | null
        if (rec !== null && typeof rec.country_code === 'string') g.country = rec.country_code
      }
      return g
    },
    info (): GeoDatabaseInfo[] {
      return readers.map((r, i) => ({
        path: paths[i] ?? '',
        databaseType: r.metadata.databaseType,
        buildEpoch: r.metadata.buildEpoch.toISOString(),
        ageDays: (Date.now() - r.metadata.buildEpoch.getTime()) / 86_400_000,
        ipVersion: r.metadata.ipVersion,
        nodeCount: r.metadata.nodeCount
      }))
    },
    stale: () => false,
    async close () {}
  }
}
