import { Type, type Static } from '@sinclair/typebox'

export const GeoSchema = Type.Object({
  databases: Type.Optional(Type.Array(Type.String(), {
    minItems: 1,
    description: 'MMDB files layered in order (later files add fields earlier ones lack); absent: the embedded default'
  })),
  maxAgeDays: Type.Integer({ minimum: 1, default: 45, description: 'A database older than this is reported stale' }),
  failClosedWhenStale: Type.Boolean({ default: false, description: 'Treat every location as unknown while the database is stale' }),
  watch: Type.Boolean({ default: true, description: 'Reload database files when they change on disk' })
}, { additionalProperties: false, default: {} })

export type GeoConfig = Static<typeof GeoSchema>
