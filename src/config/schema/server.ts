import { Type, type Static } from '@sinclair/typebox'

export const ServerSchema = Type.Object({
  host: Type.String({ default: '0.0.0.0', description: 'Address the data plane listens on' }),
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  adminHost: Type.String({ default: '127.0.0.1', description: 'Address the admin plane listens on' }),
  adminPort: Type.Integer({ minimum: 0, maximum: 65535, default: 9090 }),
  trustedProxies: Type.Array(Type.String(), {
    default: [],
    description: 'CIDRs of peers whose X-Forwarded-For / Forwarded headers are believed; empty: none'
  }),
  internalNetworks: Type.Array(Type.String(), {
    default: [],
    description: 'CIDRs of internal callers besides loopback, private and link-local: location "internal" (locations.internal), never looked up, not counted as unknown'
  }),
  bodyLimit: Type.Integer({ minimum: 1024, default: 4 * 1024 * 1024, description: 'Largest request body, bytes' }),
  requestTimeoutMs: Type.Integer({ minimum: 0, default: 600_000, description: 'Whole-request deadline for a client (0: none)' }),
  headersTimeoutMs: Type.Integer({ minimum: 1, default: 30_000, description: 'Time a client may take to send its headers' }),
  keepAliveTimeoutMs: Type.Integer({ minimum: 1, default: 72_000 }),
  maxHeaderSize: Type.Integer({ minimum: 1024, default: 16_384 }),
  workers: Type.Union([Type.Integer({ minimum: 1, maximum: 1024 }), Type.Literal('auto')], {
    default: 'auto',
    description: 'Worker processes sharing the data-plane port (serve --workers overrides); auto: the cores this process may use (os.availableParallelism()) when redis is configured, else 1; 1: one process'
  }),
  objectRoutesTtlSeconds: Type.Integer({
    minimum: 1, default: 30 * 86_400,
    description: 'How long the gateway remembers which backend created a response or job, for /v1/responses/{id} and the like'
  }),
  shutdownGraceMs: Type.Integer({ minimum: 0, default: 30_000, description: 'SIGTERM: time in-flight requests get to finish' })
}, { additionalProperties: false, default: {} })

export type ServerConfig = Static<typeof ServerSchema>
