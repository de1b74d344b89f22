/*
 * The domain: what every layer talks about. Nothing here imports anything above core/.
 */

/** The capabilities a tier may grant; an endpoint needs one, a request body may ask for more (tools, streaming). */
export const CAPABILITIES = ['chat', 'completions', 'embeddings', 'images', 'audio', 'fine-tuning', 'tools', 'streaming'] as const
export type Capability = typeof CAPABILITIES[number]

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
  /** absent: active. review and suspended keys are refused (403 party_restricted) */
  status?: 'active' | 'review' | 'suspended' | undefined
}

/** What the request asks for, read from its path and body before any decision. */
export interface RequestShape {
  endpoint: Endpoint
  /** path + query exactly as it will be forwarded */
  forwardPath: string
  model: string | null
  capabilities: Capability[]
  /** max_tokens / max_completion_tokens asked for, if any: a bound on each output (choice) */
  maxOutputTokens: number | null
  /** `n` (choices asked for) when the body has one: recorded, not decided on */
  n?: number | null
  /**
   * How many outputs one request asks for: `n` (chat, completions, images), `best_of` for completions (the larger
   * of the two: best_of are generated, n returned); 1 when not asked. Output bounds and reservations multiply by it.
   */
  choices: number
  /** rough prompt size in tokens (bytes / 4 of the prompt text) used for reservations and maxContextTokens */
  promptTokens: number
  stream: boolean
  /**
   * Set on endpoints that name a stored object instead of a model (`/v1/responses/{id}`, `/v1/fine_tuning/jobs`):
   * the object's id, or null on a list. Absent on every other endpoint.
   */
  objectId?: string | null | undefined
  /** the answer creates an object later requests address by id (POST /v1/responses, POST /v1/fine_tuning/jobs) */
  createsObject?: boolean | undefined
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
  /** set when the tier clamps max_tokens: the bound of each output (the tier's bound / the request's choices) */
  clampOutputTokens?: number | undefined
  /** what gave the location tier: `subdivision:UA-43`, `country:CU`, `default`, `unknown`, `internal`, `anonymizer:tor` */
  locationSource?: string | undefined
  /** set when the refusal is about the party (the key's status, its declared country): 403 party_restricted */
  code?: 'party_restricted' | undefined
  /** the caller is not in the key's declared country, and what the tiers say to do about it */
  countryMismatch?: { declared: string, actual: string, action: 'alert' | 'review' | 'deny' } | undefined
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

