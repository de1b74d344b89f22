import { Type, type Static } from '@sinclair/typebox'
import { namesSchema } from '../../core/names.js'

export const BackendSchema = Type.Object({
  url: Type.String({ pattern: '^https?://', description: 'Base URL of an OpenAI-compatible server (vLLM, TGI, SGLang, …)' }),
  region: Type.String({ minLength: 2, description: 'ISO country code (or ISO 3166-2 subdivision) where it runs' }),
  apiKey: Type.Optional(Type.String({ description: 'Sent to the backend as Authorization: Bearer' })),
  connections: Type.Integer({ minimum: 1, default: 128 }),
  connectTimeoutMs: Type.Integer({ minimum: 1, default: 5_000 }),
  headersTimeoutMs: Type.Integer({ minimum: 1, default: 120_000, description: 'Time to the response headers (covers prefill)' }),
  bodyTimeoutMs: Type.Integer({ minimum: 1, default: 120_000, description: 'Longest silence between two body chunks' })
}, { additionalProperties: false })

export const BackendsSchema = Type.Record(Type.String(), BackendSchema, { default: {}, propertyNames: namesSchema() })

export type BackendConfig = Static<typeof BackendSchema>
