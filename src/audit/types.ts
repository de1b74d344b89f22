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

export interface AuditLog {
  /** Queue a record; never throws, never blocks the request. */
  append (entry: AuditEntry): void
  /** Write and fsync what is queued. */
  flush (): Promise<void>
  close (): Promise<void>
}
