import { Type, type Static } from '@sinclair/typebox'

export const RedisSchema = Type.Object({
  url: Type.Optional(Type.String({ description: 'redis:// or rediss:// URL of a single Redis; absent: in-memory stores' })),
  mode: Type.Union([Type.Literal('single'), Type.Literal('sentinel'), Type.Literal('cluster')], { default: 'single' }),
  nodes: Type.Optional(Type.Array(Type.String(), { description: 'cluster: seed nodes host:port; sentinel: sentinels host:port' })),
  sentinelName: Type.Optional(Type.String({ description: 'sentinel: the monitored master name' })),
  password: Type.Optional(Type.String()),
  keyPrefix: Type.String({ default: 'geogate:' }),
  commandTimeoutMs: Type.Integer({ minimum: 1, default: 100, description: 'A Redis command that takes longer counts as a failure' }),
  connectTimeoutMs: Type.Integer({ minimum: 1, default: 1000 })
}, { additionalProperties: false, default: {} })

export type RedisConfig = Static<typeof RedisSchema>
