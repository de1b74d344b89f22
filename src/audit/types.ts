/**
 * The audit log's records. Field names in InteractionRecord up to `latencyMs` are the contract (README, "What is
 * recorded"); the rest are additions. Every record, whatever its kind, carries the chain fields `writer`, `seq`,
 * `prev` and `hash`, always last on the line (see chain.ts for how `hash` is computed).
 */

/** How an interaction ended. `unknown`: it started and the gateway died before it finished (found on recovery). */
export type Outcome = 'ok' | 'refused' | 'backend_error' | 'client_abort' | 'shutdown' | 'error' | 'unknown'

export interface ChainFields {
  /** the replica's writer id: one chain per writer */
  writer: string
  /** 1, 2, 3, … per writer, never reused */
  seq: number
  /** hash of the writer's previous record; 64 zeros for seq 1 */
  prev: string
  /** SHA-256 (hex) of this line's text without the hash field */
  hash: string
}

/** One model interaction (permitted or refused). */
export interface InteractionFields {
  kind: 'interaction'
  ts: string
  requestId: string
  keyId: string | null
  org: string | null
  ip: string
  country: string | null
  /**
   * What kind of place the caller is: `geo` (located by the database), `unknown` (could not be located) or
   * `internal` (loopback, private, link-local, server.internalNetworks: never looked up; country null).
   * Absent in records written before it existed.
   */
  location?: 'geo' | 'unknown' | 'internal'
  subdivision: string | null
  /** the anonymizer traits that were set: vpn, tor, hosting, publicProxy, residentialProxy */
  anonymizer: string[]
  geodbBuild: string | null
  model: string | null
  classification: string | null
  servingRegion: string | null
  endpoint: string | null
  crossBorder: boolean
  decision: 'allow' | 'deny'
  rule: string
  /** HTTP status sent to the caller; null when unknown (outcome `unknown`) */
  status: number | null
  tokensIn: number | null
  tokensOut: number | null
  latencyMs: number | null
  // ── additions ──
  /** tier of the caller's location, and of the key's plan (the report groups by these) */
  locationTier: string | null
  keyTier: string | null
  /** the limit decision was made without Redis (failMode open fallback or closed refusal) */
  degraded: boolean
  /** policy.mode shadow: the rule would have refused, the request was let through */
  shadow: boolean
  outcome: Outcome
  /** status the backend answered with, when it answered */
  upstreamStatus: number | null
  stream: boolean
  /** tokens are the gateway's estimate: the backend never reported usage (e.g. the caller hung up first) */
  tokensEstimated: boolean
  /** below the subdivision (City databases): what gave the location tier, e.g. region:dnr, postal:UA:83001, city:709717 */
  locationSource?: string
  city?: number
  postalCode?: string
  // ── what a re-decision needs (absent in records written before policy versions existed) ──
  /** hash of the effective policy that decided (policy/version.ts); its text is in a `policy.version` admin record */
  policyVersion?: string | null
  /** the capabilities the request asked for (chat, tools, streaming, …) */
  capabilities?: string[]
  /** every ISO 3166-2 subdivision the caller was placed in, largest first (`subdivision` is the first) */
  subdivisions?: string[]
  /** the key's declared country and verified-entity flag, as the policy saw them */
  keyCountry?: string | null
  verifiedEntity?: boolean
  /** the output-token bound asked for (max_tokens …), and `n` when the body had one */
  maxOutputTokens?: number | null
  n?: number | null
  /** outputs the policy counted (the larger of n and best_of; 1 when not asked) */
  choices?: number
  /** the prompt size estimate the policy checked against maxContextTokens */
  promptTokens?: number
  /** how the caller's address was placed: public (located by the databases), internal, or unlocated */
  address?: 'public' | 'internal' | 'unlocated'
}

/** An admin change (tiers, locations, keys, reload), in the same chain. */
export interface AdminChange {
  ts: string
  actor: string
  role: string
  action: string
  target: string
  before: unknown
  after: unknown
}

export interface AdminFields extends AdminChange { kind: 'admin' }

/** The log's own events: recovery after a crash, retention deletions. */
export interface SystemFields {
  kind: 'system'
  ts: string
  /**
   * recovered, torn-tail: after an unclean stop; retention-delete; write-failure: records could not be made
   * durable for a while (written once they could); records-dropped: the in-memory backlog was full, records lost;
   * rewritten: a repaired filesystem had lost the newest durable records, written again from memory.
   */
  event: 'recovered' | 'torn-tail' | 'retention-delete' | 'write-failure' | 'records-dropped' | 'rewritten'
  detail: Record<string, unknown>
}

export type InteractionRecord = InteractionFields & ChainFields
export type AdminRecord = AdminFields & ChainFields
export type SystemRecord = SystemFields & ChainFields
export type AuditRecord = InteractionRecord | AdminRecord | SystemRecord

/** What the pipeline hands the audit log; the log adds writer, seq, prev and hash. */
export type AuditEntry = Omit<InteractionFields, 'kind'>

export type AnyEntry = InteractionFields | AdminFields | SystemFields

/** The writer's backlog and progress, read by /metrics at scrape time. */
export interface AuditStats {
  /** everything accepted and not yet durable: queued records, records being retried, journal entries */
  queueDepth: number
  /** age of the oldest of them, seconds (0 when none) */
  lagSeconds: number
  /** records accepted by append() */
  appended: number
  /** seq of the last record written and fsynced */
  durable: number
  /** interactions begun (forwarded) whose record is not written yet */
  inFlight: number
  writeErrors: number
  /** group commits (write + fdatasync) done */
  commits: number
  /** journal fdatasyncs done; begins / journalCommits is how many requests share one */
  journalCommits: number
  lastSeq: number
  /** records dropped because the in-memory backlog was full (audit.maxHeldRecords) while writes failed */
  dropped: number
  /** writes are failing or stuck */
  failing: boolean
}

/** What begin() found: the journal entry is durable (forward), or not, and why. */
export type BeginResult = { durable: true } | { durable: false, reason: string }

export interface AuditHealth { ok: boolean, reasons: string[] }

export interface AuditLog {
  /** The directory holding the segments (read by the admin routes and the CLI). */
  readonly dir: string
  /** This replica's writer id (one chain per writer). */
  readonly writer: string
  /** Ed25519 public key (SPKI PEM) the digests are signed with; null when no signing key is configured. */
  readonly publicKeyPem: string | null
  /** Queue an admin change record; same chain, `kind: 'admin'`. */
  appendAdminChange (change: AdminChange): void
  /**
   * Write-ahead: note that an interaction is about to be forwarded (in-flight journal) and resolve once that note is
   * durable — or, within audit.journalTimeoutMs, with the reason it is not (never rejects, never hangs). If the
   * process dies before append() is durable for the same requestId, the next start writes its record with outcome
   * `unknown`.
   */
  begin (entry: AuditEntry): Promise<BeginResult>
  /** The interaction begun will not be forwarded after all (its journal entry was not durable in time). */
  withdraw (requestId: string): void
  /** Queue a record; never throws, never blocks the request. */
  append (entry: AuditEntry): void
  /** Drop the in-flight mark of an interaction that ends without a record (out of scope). */
  end (requestId: string): void
  /** Write and fsync what is queued. */
  flush (): Promise<void>
  stats (): AuditStats
  /** Can records be made durable now? The reasons when not. */
  health (): AuditHealth
  /** health() for /readyz: a write not returned yet is judged after the I/O that came in meanwhile is read. */
  readiness (): Promise<AuditHealth>
  close (): Promise<void>
}
