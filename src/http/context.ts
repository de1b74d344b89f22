import type { GeoResult } from '../geo/types.js'
import type { ClientAddress } from '../net/forwarded.js'
import type { AuditEntry, BeginResult } from '../audit/types.js'
import type { Backend } from '../infra/backends.js'
import type { Decision, LimitOutcome, Principal, RequestShape, Usage } from '../core/types.js'
import type { Config } from '../config/schema/index.js'
import type { PolicySnapshot } from '../policy/snapshot.js'

/** Everything the pipeline learns about one request, stage by stage. */
export interface RequestContext {
  startedAt: bigint
  /**
   * The policy and configuration this request is judged by, taken once when it arrives: the decision, the backend
   * choice, the audit record and the metrics all read these, so a reload or a live change mid-request cannot make
   * the record disagree with the decision (the next request sees the new policy).
   */
  readonly policy: PolicySnapshot
  readonly config: Readonly<Config>
  clientIp: string
  /**
   * the caller's JSON body as sent, while forwarding those bytes says what the parsed body says (plain keys, see
   * core/json-depth.ts scanJson) and no stage has changed the body (a clamp sets it to null); else null
   */
  jsonText: string | null
  /** how clientIp was established (socket or trusted forwarding chain) */
  client: ClientAddress | null
  principal: Principal | null
  shape: RequestShape | null
  geo: GeoResult | null
  decision: Decision | null
  /** hash of the policy snapshot that made the decision (the audit record's policyVersion) */
  policyVersion: string | null
  limit: LimitOutcome | null
  backend: { name: string, region: string } | null
  /** the backend the request goes to, chosen before its limits are checked (forward.ts chooseBackend) */
  upstream: Backend | null
  /** the backend pinned for a request naming a stored object (forward-routes.ts), else null: chosen by model */
  route: string | null
  usage: Usage | null
  upstreamStatus: number | null
  /** how the interaction ended when not by a normal response */
  outcome: 'ok' | 'refused' | 'backend_error' | 'client_abort' | 'shutdown' | 'error'
  audited: boolean
  /** its one access-log line is written (at the response, or when the connection closed first) */
  logged: boolean
  /** the audit entry, built once when the request is about to be forwarded (journal) and finished at its end */
  auditEntry: AuditEntry | null
  /**
   * its journal entry's write, started while the limits are checked; forward() awaits it (audit.ts beginRecord).
   * null: not begun yet; false: none (the interaction is out of the audit's scope)
   */
  journal: { started: bigint, result: Promise<BeginResult> } | null | false
  /** why the interaction was refused for want of a durable journal entry (503 audit_unavailable), if it was */
  auditRefused: string | null
}

declare module 'fastify' {
  interface FastifyRequest {
    ctx: RequestContext
  }
}

export function newContext (clientIp: string, policy: PolicySnapshot, config: Readonly<Config>): RequestContext {
  return {
    startedAt: process.hrtime.bigint(),
    policy,
    config,
    clientIp,
    jsonText: null,
    client: null,
    principal: null,
    shape: null,
    geo: null,
    decision: null,
    policyVersion: null,
    limit: null,
    backend: null,
    upstream: null,
    route: null,
    usage: null,
    upstreamStatus: null,
    outcome: 'ok',
    audited: false,
    logged: false,
    auditEntry: null,
    journal: null,
    auditRefused: null
  }
}
