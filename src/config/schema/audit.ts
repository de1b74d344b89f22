import { Type, type Static } from '@sinclair/typebox'

export const AuditSchema = Type.Object({
  dir: Type.String({ default: 'var/audit', description: 'Append-only JSONL segments and chain state' }),
  scope: Type.Union([Type.Literal('cross-border'), Type.Literal('all')], { default: 'cross-border' }),
  ip: Type.Union([Type.Literal('full'), Type.Literal('truncated'), Type.Literal('hashed')], {
    default: 'full', description: 'full; truncated (IPv4 /24, IPv6 /48); hashed (HMAC-SHA-256 with ipHashSalt)'
  }),
  ipHashSalt: Type.Optional(Type.String({ minLength: 16, description: 'Secret salt for ip: hashed' })),
  writerId: Type.Optional(Type.String({
    pattern: '^[A-Za-z0-9.-]{1,100}$', description: 'This replica\'s chain id in segment names; default: the host name'
  })),
  fsyncIntervalMs: Type.Integer({ minimum: 0, default: 50, description: 'Group-commit window for final records (journal entries are committed at once)' }),
  onFailure: Type.Union([Type.Literal('refuse'), Type.Literal('serve')], {
    default: 'refuse',
    description: 'When an interaction\'s journal entry cannot be made durable: refuse it (503 audit_unavailable), or serve it anyway (counted in geogate_audit_unrecorded_served_total and logged)'
  }),
  maxBacklog: Type.Integer({ minimum: 1, default: 1000, description: 'While audit writes fail, records not yet durable past which interactions are refused at once instead of waiting journalTimeoutMs' }),
  maxHeldRecords: Type.Integer({ minimum: 1, default: 100_000, description: 'Records held in memory while writes fail; beyond, records are dropped and counted (geogate_audit_records_dropped_total)' }),
  journalTimeoutMs: Type.Integer({ minimum: 1, default: 1000, description: 'Longest a request waits for its in-flight journal entry to be durable before it is refused' }),
  flushBytes: Type.Integer({ minimum: 1, default: 1024 * 1024, description: 'Queued bytes that trigger a commit before the window ends' }),
  rotateBytes: Type.Integer({ minimum: 4096, default: 256 * 1024 * 1024 }),
  signingKey: Type.Optional(Type.String({ description: 'Ed25519 private key (PEM) for signed digests' })),
  signingKeyFile: Type.Optional(Type.String({ description: 'File holding the Ed25519 private key (PEM), instead of signingKey' })),
  digestIntervalMs: Type.Integer({ minimum: 1000, default: 3_600_000, description: 'Signed digest of the open segment this often' }),
  retentionDays: Type.Optional(Type.Integer({ minimum: 1, description: 'Delete segments older than this, once verified and exported' }))
}, { additionalProperties: false, default: {} })

export type AuditConfig = Static<typeof AuditSchema>
