import { Type, type Static } from '@sinclair/typebox'

/** How limits are kept (the limits themselves live on each tier and in `quotas`). */
export const LimiterSchema = Type.Object({
  leaseTtlMs: Type.Integer({
    minimum: 100,
    default: 30_000,
    description: 'Concurrency lease lifetime; renewed while the request runs, so a dead replica frees its slots after at most this long'
  }),
  breakerMs: Type.Integer({
    minimum: 0,
    default: 1000,
    description: 'After a Redis failure, decide by failMode without asking Redis for this long, then probe again'
  }),
  authFailuresPerMinute: Type.Integer({
    minimum: 0,
    default: 30,
    description: 'Failed authentications (data plane 401, admin plane bad token) allowed per client IP per minute before 429; 0: no limit'
  })
}, { additionalProperties: false, default: {} })

export type LimiterConfig = Static<typeof LimiterSchema>
