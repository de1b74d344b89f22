import { Type, type Static } from '@sinclair/typebox'

export const ScreeningSchema = Type.Object({
  blockScore: Type.Number({ minimum: 0, maximum: 1, default: 0.92, description: 'A match scoring at least this refuses the organisation a key (and suspends an existing one)' }),
  reviewScore: Type.Number({ minimum: 0, maximum: 1, default: 0.8, description: 'A match scoring at least this puts the key in review until an admin clears it' }),
  maxAgeDays: Type.Integer({ minimum: 1, default: 7, description: 'A list older than this is reported stale (log, metric, /readyz); the lists change daily' }),
  dir: Type.String({ default: 'var/screening', description: 'Without Redis: where the imported list is kept (with Redis every replica shares the one in Redis)' }),
  maxBytes: Type.Integer({ minimum: 1, default: 268435456, description: 'Largest list file the admin API accepts' }),
  minRowsRatio: Type.Number({ minimum: 0, maximum: 1, default: 0.5, description: 'Refuse a list with fewer rows than this share of the one in service (a truncated download); import --force overrides' })
}, { additionalProperties: false, default: {} })

export type ScreeningConfig = Static<typeof ScreeningSchema>
