import { Type, type Static } from '@sinclair/typebox'

import { CAPABILITIES, type Capability } from '../../core/types.js'
import { ANONYMIZER_KINDS, DEFAULT_ANONYMIZER_KINDS, type AnonymizerKind } from '../../core/anonymizers.js'
import { RESERVED_NAMES, namesSchema } from '../../core/names.js'
export { CAPABILITIES, type Capability, ANONYMIZER_KINDS, type AnonymizerKind }

export const AnonymizerKindSchema = Type.Union(ANONYMIZER_KINDS.map((c) => Type.Literal(c)))

export const CapabilitySchema = Type.Union(CAPABILITIES.map((c) => Type.Literal(c)))

export const ModelSchema = Type.Object({
  backend: Type.String({ description: 'Name of the backend (or first of backends) serving the model' }),
  backends: Type.Optional(Type.Array(Type.String(), { description: 'Several regions serving the same model' })),
  upstreamModel: Type.Optional(Type.String({ description: 'Model name the backend knows it by, when different' })),
  classification: Type.String({ default: 'EAR99', description: 'Export classification (ECCN), e.g. EAR99, 4E091' }),
  trainingFlops: Type.Optional(Type.Number({ minimum: 0 })),
  origin: Type.Optional(Type.String())
}, { additionalProperties: false })

export const LimitsSchema = Type.Object({
  requestsPerMinute: Type.Optional(Type.Integer({ minimum: 0 })),
  tokensPerMinute: Type.Optional(Type.Integer({ minimum: 0 })),
  concurrency: Type.Optional(Type.Integer({ minimum: 0 }))
}, { additionalProperties: false })

export const TierSchema = Type.Object({
  deny: Type.Boolean({ default: false, description: 'Refuse everything (e.g. embargoed locations)' }),
  models: Type.Array(Type.String(), { default: [], description: 'Model name globs this tier may use' }),
  classifications: Type.Optional(Type.Array(Type.String(), {
    description: 'Export classifications (ECCN, e.g. EAR99) of the models this tier may use; absent: all of them'
  })),
  capabilities: Type.Array(CapabilitySchema, { default: [] }),
  maxOutputTokens: Type.Optional(Type.Integer({
    minimum: 1, description: 'Output bound of one request: all its choices together (n × max_tokens; best_of for completions)'
  })),
  maxChoices: Type.Optional(Type.Integer({
    minimum: 1, description: 'Most outputs one request may ask for (n, best_of, images n); absent: no limit'
  })),
  maxContextTokens: Type.Optional(Type.Integer({ minimum: 1 })),
  outputTokens: Type.Union([Type.Literal('reject'), Type.Literal('clamp')], {
    default: 'clamp', description: 'A max_tokens over maxOutputTokens: clamp it, or refuse with 403'
  }),
  limits: Type.Optional(LimitsSchema),
  failMode: Type.Union([Type.Literal('open'), Type.Literal('closed')], { default: 'closed' }),
  countryMismatch: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('alert'), Type.Literal('review'), Type.Literal('deny')], {
    description: "A call from a country other than the key's declared one: allow (absent), alert (metric + log), review (the key goes to review), deny (403 party_restricted). The stricter of the location's and the key's tier applies"
  })),
  accuracyRadius: Type.Optional(Type.Union([Type.Literal('inside'), Type.Literal('center')], {
    description: "Region rules of this tier: inside (absent) — a caller whose accuracy circle crosses into the region is in it; center — only the point itself counts"
  }))
}, { additionalProperties: false })

export const LocationsSchema = Type.Object({
  tiers: Type.Record(Type.String(), Type.Array(Type.String()), {
    default: {}, description: 'tier -> ISO 3166-1 alpha-2 countries and ISO 3166-2 subdivisions (UA-43)', propertyNames: namesSchema()
  }),
  default: Type.String({ description: 'Tier of every other resolved location' }),
  unknown: Type.String({ description: 'Tier when the location cannot be resolved' }),
  anonymizers: Type.Optional(Type.String({ description: 'Tier of VPN / Tor / proxy callers unless the key is a verified entity' })),
  anonymizerKinds: Type.Array(AnonymizerKindSchema, {
    default: [...DEFAULT_ANONYMIZER_KINDS],
    description: 'Which anonymizer traits put a caller in the anonymizers tier (hosting is off by default: API callers run in clouds)'
  }),
  internal: Type.Optional(Type.String({
    description: 'Tier of loopback, private and link-local caller addresses; absent: treated as unknown'
  }))
}, { additionalProperties: false })

export const QuotaSchema = Type.Object({
  id: Type.String(),
  location: Type.String({ description: 'A country (CN), subdivision (UA-43) or location tier name' }),
  tokens: Type.Integer({ minimum: 0 }),
  period: Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('month')])
}, { additionalProperties: false })

/** active: may call; review: a possible list match (or a declared-country mismatch) an admin must clear; suspended: a list match. */
export const KEY_STATUSES = ['active', 'review', 'suspended'] as const
export type KeyStatus = typeof KEY_STATUSES[number]
export const KeyStatusSchema = Type.Union(KEY_STATUSES.map((s) => Type.Literal(s)), { description: 'absent: active' })

/** Why a key is in review or suspended (or was cleared): the list entry, its list and the score, or the mismatch. */
export const KeyScreeningSchema = Type.Object({
  reason: Type.String({ description: 'screening:block, screening:review, country-mismatch, cleared' }),
  at: Type.String(),
  entryId: Type.Optional(Type.String()),
  entryName: Type.Optional(Type.String()),
  source: Type.Optional(Type.String()),
  score: Type.Optional(Type.Number()),
  listVersion: Type.Optional(Type.Integer()),
  detail: Type.Optional(Type.String()),
  clearedBy: Type.Optional(Type.String()),
  clearedReason: Type.Optional(Type.String()),
  /** list entries an admin cleared this organisation of: re-screening does not raise them again */
  cleared: Type.Optional(Type.Array(Type.String()))
}, { additionalProperties: false })

export const KeySchema = Type.Object({
  id: Type.String({ minLength: 1, not: { enum: [...RESERVED_NAMES] } }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'hex SHA-256 of the raw key' }),
  org: Type.String(),
  tier: Type.String(),
  country: Type.Optional(Type.String({ pattern: '^[A-Z]{2}$' })),
  verifiedEntity: Type.Boolean({ default: false }),
  domain: Type.Optional(Type.String({ minLength: 1, description: "The organisation's web domain, screened against the lists' web sites" })),
  status: Type.Optional(KeyStatusSchema),
  screening: Type.Optional(KeyScreeningSchema)
}, { additionalProperties: false })

export const PolicyModeSchema = Type.Object({
  mode: Type.Union([Type.Literal('enforce'), Type.Literal('shadow')], {
    default: 'enforce', description: 'shadow: decide and record refusals, but forward anyway'
  }),
  blockedByUrl: Type.String({ default: 'https://geogate.invalid/policy', description: 'Link rel="blocked-by" target of 451 answers' })
}, { additionalProperties: false, default: {} })

/** A location section in a schedule: only what changes (no defaults, so nothing unnamed is reset). */
export const PartialLocationsSchema = Type.Object({
  tiers: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()), {
    description: "tier -> places, each replacing that tier's list; a place named here leaves the tier it was in"
  })),
  default: Type.Optional(Type.String()),
  unknown: Type.Optional(Type.String()),
  anonymizers: Type.Optional(Type.String()),
  anonymizerKinds: Type.Optional(Type.Array(AnonymizerKindSchema)),
  internal: Type.Optional(Type.String())
}, { additionalProperties: false })

export const ScheduleEntrySchema = Type.Object({
  effectiveFrom: Type.String({ format: 'date-time', description: 'The instant (RFC 3339, e.g. 2027-01-15T00:00:00Z) from which this change applies' }),
  note: Type.Optional(Type.String({ description: 'Why (e.g. the rule and its Federal Register citation); kept in the logs' })),
  locations: Type.Optional(PartialLocationsSchema),
  tiers: Type.Optional(Type.Record(Type.String(), TierSchema, { description: 'tier definitions replacing (or adding) those of the same name' })),
  models: Type.Optional(Type.Record(Type.String(), ModelSchema, { description: 'model definitions replacing (or adding) those of the same name' }))
}, { additionalProperties: false })

export type ModelConfig = Static<typeof ModelSchema>
export type TierConfig = Static<typeof TierSchema>
export type LocationsConfig = Static<typeof LocationsSchema>
export type KeyConfig = Static<typeof KeySchema>
export type QuotaConfig = Static<typeof QuotaSchema>
export type LimitsConfig = Static<typeof LimitsSchema>
export type ScheduleEntry = Static<typeof ScheduleEntrySchema>
