import { Type, type Static } from '@sinclair/typebox'
import { ServerSchema } from './server.js'
import { GeoSchema } from './geo.js'
import { RedisSchema } from './redis.js'
import { LimiterSchema } from './limiter.js'
import { BackendsSchema } from './backends.js'
import { ModelSchema, LocationsSchema, TierSchema, KeySchema, QuotaSchema, PolicyModeSchema, ScheduleEntrySchema } from './policy.js'
import { AuditSchema } from './audit.js'
import { AdminSchema } from './admin.js'
import { ScreeningSchema } from './screening.js'
import { namesSchema } from '../../core/names.js'

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
function LogLevel (opts: { default: typeof LEVELS[number], description?: string }) {
  return Type.Union(LEVELS.map((l) => Type.Literal(l)), opts)
}

// The one source of truth: config/geogate.schema.json is generated from this (`geogate schema`).
export const ConfigSchema = Type.Object({
  server: ServerSchema,
  geo: GeoSchema,
  redis: RedisSchema,
  limiter: LimiterSchema,
  backends: BackendsSchema,
  models: Type.Record(Type.String(), ModelSchema, { default: {}, propertyNames: namesSchema('model') }),
  locations: LocationsSchema,
  tiers: Type.Record(Type.String(), TierSchema, { propertyNames: namesSchema() }),
  quotas: Type.Array(QuotaSchema, { default: [], description: 'Aggregate token caps per location per period' }),
  keys: Type.Array(KeySchema, { default: [] }),
  policy: PolicyModeSchema,
  schedule: Type.Array(ScheduleEntrySchema, {
    default: [], description: 'Policy changes that take effect at a set instant, in order: each a partial policy laid over the one before'
  }),
  audit: AuditSchema,
  admin: AdminSchema,
  screening: ScreeningSchema,
  log: Type.Object({
    level: LogLevel({ default: 'info' }),
    accessLevel: LogLevel({
      default: 'info',
      description: 'Level of the one access-log line per request (request id, method, path, status, rule, latency); logged only when log.level lets it through; silent: none'
    })
  }, { additionalProperties: false, default: {} })
}, {
  $id: 'https://geogate.dev/schema/geogate.schema.json',
  title: 'geogate configuration',
  additionalProperties: false
})

export type Config = Static<typeof ConfigSchema>
export * from './server.js'
export * from './geo.js'
export * from './redis.js'
export * from './limiter.js'
export * from './backends.js'
export * from './policy.js'
export * from './audit.js'
export * from './admin.js'
export * from './screening.js'
