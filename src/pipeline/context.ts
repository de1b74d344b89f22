import type { Capability } from '../config/schema/index.js'
import type { GeoResult } from '../geo/types.js'
import type { ClientAddress } from './client-ip.js'

/**
 * The endpoints geogate knows, named after the OpenAI API. The policy decides on these names, computed from
 * exactly the path that is forwarded (see endpoint.ts), never on the raw URL.
 */
export type Endpoint =
  | 'chat.completions' | 'completions' | 'embeddings' | 'models'
  | 'images.generations' | 'images.edits' | 'images.variations'
  | 'audio.transcriptions' | 'audio.translations' | 'audio.speech'
  | 'fine_tuning.jobs' | 'responses' | 'other'

/** The caller behind an API key. Never holds the key itself. */
export interface Principal {
  keyId: string
  org: string
  tier: string
  country?: string | undefined
  verifiedEntity: boolean
}

/** What the request asks for, read from its path and body before any decision. */
export interface RequestShape {
  endpoint: Endpoint
  /** path + query exactly as it will be forwarded */
  forwardPath: string
  model: string | null
  capabilities: Capability[]
  /** max_tokens / max_completion_tokens asked for, if any */
  maxOutputTokens: number | null
  /** rough prompt size in tokens (bytes / 4 of the prompt text) used for reservations and maxContextTokens */
  promptTokens: number
  stream: boolean
}

export type DecisionStatus = 200 | 403 | 404 | 451

/** A policy decision. `rule` names what decided, e.g. `location:embargoed`, `tier:tier2:model`. */
export interface Decision {
  allow: boolean
  rule: string
  status: DecisionStatus
  /** safe to show the caller: what was refused, never how the policy is built */
  message: string
  locationTier: string
  keyTier: string
  /** policy.mode shadow: a refusal that was not enforced */
  shadow: boolean
  /** set when the tier clamps max_tokens */
  clampOutputTokens?: number | undefined
  /** what gave the location tier: `subdivision:UA-43`, `country:CU`, `default`, `unknown`, `internal`, `anonymizer:tor` */
  locationSource?: string | undefined
}

/** Result of the limits stage. */
export interface LimitOutcome {
  allowed: boolean
  /** decided without Redis (failMode open fallback, or closed refusal) */
  degraded: boolean
  rule: string | null
  retryAfterSeconds: number | null
  headers: Record<string, string>
  /** tokens reserved up front; reconciled with the actual usage by settle() */
  reservedTokens: number
  /** give back concurrency and reconcile tokens; idempotent */
  settle (usage: { tokensIn: number, tokensOut: number } | null): Promise<void>
}

/** Tokens of one interaction; `estimated` when the backend never reported them (e.g. the caller hung up first). */
export interface Usage { tokensIn: number, tokensOut: number, estimated?: boolean }

/** Everything the pipeline learns about one request, stage by stage. */
export interface RequestContext {
  startedAt: bigint
  clientIp: string
  /** how clientIp was established (socket or trusted forwarding chain) */
  client: ClientAddress | null
  principal: Principal | null
  shape: RequestShape | null
  geo: GeoResult | null
  decision: Decision | null
  limit: LimitOutcome | null
  backend: { name: string, region: string } | null
  usage: Usage | null
  upstreamStatus: number | null
  /** how the interaction ended when not by a normal response */
  outcome: 'ok' | 'refused' | 'backend_error' | 'client_abort' | 'shutdown' | 'error'
  audited: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    ctx: RequestContext
  }
}

export function newContext (clientIp: string): RequestContext {
  return {
    startedAt: process.hrtime.bigint(),
    clientIp,
    client: null,
    principal: null,
    shape: null,
    geo: null,
    decision: null,
    limit: null,
    backend: null,
    usage: null,
    upstreamStatus: null,
    outcome: 'ok',
    audited: false
  }
}
