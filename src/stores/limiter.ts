import type { Logger } from 'pino'
import type { Config, TierConfig } from '../config/schema/index.js'
import type { LimitOutcome, Principal, RequestShape } from '../pipeline/context.js'
import type { GeoResult } from '../geo/types.js'

export interface LimitRequest {
  principal: Principal
  /** the tier whose limits apply (the key's tier) */
  tier: Readonly<TierConfig>
  tierName: string
  locationTier: string
  geo: GeoResult
  shape: RequestShape
  /** tokens to reserve before forwarding: prompt estimate + max output */
  estimatedTokens: number
}

export interface Limiter {
  acquire (req: LimitRequest): Promise<LimitOutcome>
  close (): Promise<void>
}

/**
 * Admits everything. TODO(issue 4): memory and Redis stores with one contract suite, fail modes.
 */
export function createLimiter (_config: Readonly<Config>, _log: Logger): Limiter {
  return {
    async acquire (): Promise<LimitOutcome> {
      return { allowed: true, degraded: false, rule: null, retryAfterSeconds: null, headers: {}, reservedTokens: 0, settle: async () => {} }
    },
    async close () {}
  }
}
