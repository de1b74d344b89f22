import { Type, type Static } from '@sinclair/typebox'

export const GeoSchema = Type.Object({
  databases: Type.Optional(Type.Array(Type.String(), {
    minItems: 1,
    description: 'MMDB files layered in order (later files add fields earlier ones lack); absent: the embedded default'
  })),
  maxAgeDays: Type.Integer({ minimum: 1, default: 45, description: 'A database older than this is reported stale' }),
  failClosedWhenStale: Type.Boolean({ default: false, description: 'Treat every location as unknown while the database is stale' }),
  watch: Type.Boolean({ default: true, description: 'Reload database files when they change on disk' }),
  regions: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }), Type.String(), {
    description: 'Named regions as GeoJSON files (Polygon, MultiPolygon, Feature, FeatureCollection; WGS 84 lon/lat), matched on City databases\' coordinates; locations.tiers names them as region:<name>'
  }))
}, { additionalProperties: false, default: {} })

export type GeoConfig = Static<typeof GeoSchema>
