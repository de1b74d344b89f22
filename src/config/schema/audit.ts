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
  journalTimeoutMs: Type.Integer({ minimum: 1, default: 1000, description: 'A request waiting for its in-flight journal entry is refused once audit writes fail, or a journal write has not returned for this long, or it has waited twice this long' }),
  flushBytes: Type.Integer({ minimum: 1, default: 1024 * 1024, description: 'Queued bytes that trigger a commit before the window ends' }),
  rotateBytes: Type.Integer({ minimum: 4096, default: 256 * 1024 * 1024 }),
  signingKey: Type.Optional(Type.String({ description: 'Ed25519 private key (PEM) for signed digests' })),
  signingKeyFile: Type.Optional(Type.String({ description: 'File holding the Ed25519 private key (PEM), instead of signingKey' })),
  require: Type.Union([Type.Literal('signed'), Type.Literal('any')], {
    default: 'any', description: 'signed: refuse to start without a signing key (the shipped configs set this)'
  }),
  generateDemoKey: Type.Boolean({
    default: false, description: 'DEMO ONLY: create signingKeyFile on first start when it is missing (config/geogate.yaml, for npm start)'
  }),
  digestIntervalMs: Type.Integer({ minimum: 1000, default: 3_600_000, description: 'Signed digest of the open segment this often' }),
  tsa: Type.Optional(Type.Object({
    url: Type.String({ description: 'RFC 3161 time-stamp authority: each digest\'s SHA-256 is POSTed (application/timestamp-query); the reply is kept as digests/<name>.tsr' }),
    timeoutMs: Type.Integer({ minimum: 100, default: 10_000 }),
    certFile: Type.Optional(Type.String({ description: 'The TSA\'s certificate (or its CA), PEM: what `audit verify --config` checks the tokens against' }))
  }, { additionalProperties: false })),
  witness: Type.Optional(Type.Object({
    postgres: Type.Optional(Type.Object({
      url: Type.String({ description: 'A role with INSERT only on the table, e.g. ${AUDIT_WITNESS_PG_URL}' }),
      table: Type.String({ default: 'geogate_audit_witness', pattern: '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)?$' }),
      timeoutMs: Type.Integer({ minimum: 100, default: 10_000 })
    }, { additionalProperties: false })),
    s3: Type.Optional(Type.Object({
      bucket: Type.String({ description: 'A bucket with Object Lock enabled (README "For auditors")' }),
      prefix: Type.String({ default: 'geogate-audit/' }),
      region: Type.String(),
      endpoint: Type.Optional(Type.String()),
      retainDays: Type.Integer({ minimum: 1, default: 400, description: 'Compliance-mode retention of each digest object' })
    }, { additionalProperties: false }))
  }, { additionalProperties: false, description: 'Append each signed digest where the gateway can add but not change' })),
  query: Type.Object({
    maxRows: Type.Integer({ minimum: 1, default: 10_000, description: 'Most rows GET /admin/audit/query returns (truncated: true beyond)' }),
    timeoutMs: Type.Integer({ minimum: 100, default: 30_000, description: 'A query running longer is interrupted' })
  }, { additionalProperties: false, default: {} }),
  retentionDays: Type.Optional(Type.Integer({ minimum: 1, description: 'Delete segments older than this, once verified and exported' }))
}, { additionalProperties: false, default: {} })

export type AuditConfig = Static<typeof AuditSchema>
