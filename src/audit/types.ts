/** One audit record, as written (field names are the contract, see SPEC.md). */
export interface AuditRecord {
  ts: string
  requestId: string
  keyId: string | null
  org: string | null
  ip: string
  country: string | null
  subdivision: string | null
  anonymizer: string[]
  geodbBuild: string | null
  model: string | null
  classification: string | null
  servingRegion: string | null
  endpoint: string | null
  crossBorder: boolean
  decision: 'allow' | 'deny'
  rule: string
  status: number
  tokensIn: number | null
  tokensOut: number | null
  latencyMs: number
  degraded?: boolean
  shadow?: boolean
  outcome?: string
  seq: number
  prev: string
  hash: string
}

/** What the pipeline hands the audit log; the log adds seq, prev and hash. */
export type AuditEntry = Omit<AuditRecord, 'seq' | 'prev' | 'hash'>

/** An admin change (tiers, locations, keys, reload): who did what, before and after. */
export interface AdminChange {
  ts: string
  actor: string
  role: string
  action: string
  target: string
  before: unknown
  after: unknown
}

/** The writer's backlog, read by /metrics at scrape time. */
export interface AuditStats {
  /** records accepted but not yet written and fsynced */
  queueDepth: number
  /** age of the oldest of them, seconds (0 when none) */
  lagSeconds: number
}

export interface AuditLog {
  /** Optional: the writer's backlog for geogate_audit_queue_depth / geogate_audit_writer_lag_seconds. */
  stats?(): AuditStats
  /** Queue an admin change record; same chain, `kind: 'admin'`. */
  appendAdminChange (change: AdminChange): void
  /** Queue a record; never throws, never blocks the request. */
  append (entry: AuditEntry): void
  /** Write and fsync what is queued. */
  flush (): Promise<void>
  close (): Promise<void>
}
