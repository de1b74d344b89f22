import { Type, type Static } from '@sinclair/typebox'

export const AuditSchema = Type.Object({
  dir: Type.String({ default: 'var/audit', description: 'Append-only JSONL segments and chain state' }),
  scope: Type.Union([Type.Literal('cross-border'), Type.Literal('all')], { default: 'cross-border' }),
  ip: Type.Union([Type.Literal('full'), Type.Literal('truncated'), Type.Literal('hashed')], { default: 'full' }),
  ipHashSalt: Type.Optional(Type.String({ description: 'Secret salt for ip: hashed' })),
  fsyncIntervalMs: Type.Integer({ minimum: 0, default: 50, description: 'Group-commit window' }),
  rotateBytes: Type.Integer({ minimum: 4096, default: 256 * 1024 * 1024 }),
  signingKey: Type.Optional(Type.String({ description: 'Ed25519 private key (PEM) for signed digests' })),
  digestIntervalMs: Type.Integer({ minimum: 1000, default: 3_600_000 }),
  retentionDays: Type.Optional(Type.Integer({ minimum: 1 }))
}, { additionalProperties: false, default: {} })

export type AuditConfig = Static<typeof AuditSchema>
