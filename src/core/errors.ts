import createError from '@fastify/error'

/**
 * Every error a caller can see, with its HTTP status and the OpenAI-style `type`/`code` it is rendered with
 * (`{"error":{"message","type","code"}}`), so OpenAI SDKs surface them as APIError with the right status.
 */
export const errorTypes = {
  GG_BAD_REQUEST: { type: 'invalid_request_error', code: 'invalid_request' },
  GG_UNAUTHORIZED: { type: 'authentication_error', code: 'invalid_api_key' },
  GG_FORBIDDEN: { type: 'permission_error', code: 'forbidden' },
  GG_CAPABILITY: { type: 'permission_error', code: 'capability_not_permitted' },
  GG_GEO: { type: 'permission_error', code: 'geo_restricted' },
  GG_PARTY: { type: 'permission_error', code: 'party_restricted' },
  GG_NOT_FOUND: { type: 'invalid_request_error', code: 'not_found' },
  GG_CONFLICT: { type: 'invalid_request_error', code: 'conflict' },
  GG_INVALID_POLICY: { type: 'invalid_request_error', code: 'invalid_policy' },
  GG_MODEL_NOT_FOUND: { type: 'invalid_request_error', code: 'model_not_found' },
  GG_BODY_TOO_LARGE: { type: 'invalid_request_error', code: 'request_too_large' },
  GG_RATE_LIMITED: { type: 'rate_limit_error', code: 'rate_limited' },
  GG_BAD_GATEWAY: { type: 'api_error', code: 'backend_unavailable' },
  GG_GATEWAY_TIMEOUT: { type: 'api_error', code: 'backend_timeout' },
  GG_UNAVAILABLE: { type: 'api_error', code: 'service_unavailable' },
  GG_AUDIT_UNAVAILABLE: { type: 'api_error', code: 'audit_unavailable' },
  GG_INTERNAL: { type: 'api_error', code: 'internal_error' }
} as const

export type ErrorCode = keyof typeof errorTypes

export const BadRequestError = createError<'GG_BAD_REQUEST', 400, [string, ErrorOptions?]>('GG_BAD_REQUEST', '%s', 400)
export const UnauthorizedError = createError<'GG_UNAUTHORIZED', 401, [string, ErrorOptions?]>('GG_UNAUTHORIZED', '%s', 401)
export const ForbiddenError = createError<'GG_FORBIDDEN', 403, [string, ErrorOptions?]>('GG_FORBIDDEN', '%s', 403)
export const CapabilityError = createError<'GG_CAPABILITY', 403, [string, ErrorOptions?]>('GG_CAPABILITY', '%s', 403)
/** RFC 7725: 451 Unavailable For Legal Reasons. */
export const GeoRestrictedError = createError<'GG_GEO', 451, [string, ErrorOptions?]>('GG_GEO', '%s', 451)
/** Denied-party screening: the key's organisation matched a restricted-party list, or the key is in review or suspended. */
export const PartyRestrictedError = createError<'GG_PARTY', 403, [string, ErrorOptions?]>('GG_PARTY', '%s', 403)
export const NotFoundError = createError<'GG_NOT_FOUND', 404, [string, ErrorOptions?]>('GG_NOT_FOUND', '%s', 404)
export const ConflictError = createError<'GG_CONFLICT', 409, [string, ErrorOptions?]>('GG_CONFLICT', '%s', 409)
/** An admin change or reload that fails the configuration checks; `issues` lists every error. */
export const InvalidPolicyError = createError<'GG_INVALID_POLICY', 400, [string, ErrorOptions?]>('GG_INVALID_POLICY', '%s', 400)
export const ModelNotFoundError = createError<'GG_MODEL_NOT_FOUND', 404, [string, ErrorOptions?]>('GG_MODEL_NOT_FOUND', 'The model `%s` does not exist or you do not have access to it.', 404)
export const BodyTooLargeError = createError<'GG_BODY_TOO_LARGE', 413, [number, ErrorOptions?]>('GG_BODY_TOO_LARGE', 'Request body is larger than %d bytes', 413)
export const RateLimitedError = createError<'GG_RATE_LIMITED', 429, [string, ErrorOptions?]>('GG_RATE_LIMITED', '%s', 429)
export const BadGatewayError = createError<'GG_BAD_GATEWAY', 502, [string, ErrorOptions?]>('GG_BAD_GATEWAY', 'The model backend is unavailable: %s', 502)
export const GatewayTimeoutError = createError<'GG_GATEWAY_TIMEOUT', 504, [string, ErrorOptions?]>('GG_GATEWAY_TIMEOUT', 'The model backend did not answer in time: %s', 504)
export const UnavailableError = createError<'GG_UNAVAILABLE', 503, [string, ErrorOptions?]>('GG_UNAVAILABLE', '%s', 503)
/** The interaction's audit journal entry could not be made durable: it is not forwarded (audit.onFailure: refuse). */
export const AuditUnavailableError = createError<'GG_AUDIT_UNAVAILABLE', 503, [ErrorOptions?]>('GG_AUDIT_UNAVAILABLE', 'The audit log cannot record this request right now, so it was not forwarded; retry later', 503)

/** The code a caller sees for a refusing policy decision's status (the same table the data plane renders with). */
export function decisionCode (status: number): string | null {
  const code = status === 451 ? 'GG_GEO' : status === 403 ? 'GG_CAPABILITY' : status === 404 ? 'GG_MODEL_NOT_FOUND' : null
  return code === null ? null : errorTypes[code].code
}

export interface OpenAIErrorBody { error: { message: string, type: string, code: string, param: string | null } }

/** Render any error as an OpenAI-style body; unknown errors never leak their message. */
export function toOpenAIError (err: { code?: string, statusCode?: number, message: string, validation?: unknown }): { status: number, body: OpenAIErrorBody } {
  const known = err.code !== undefined && err.code in errorTypes ? errorTypes[err.code as ErrorCode] : undefined
  if (known !== undefined) {
    return { status: err.statusCode ?? 500, body: { error: { message: err.message, type: known.type, code: known.code, param: null } } }
  }
  const status = err.statusCode ?? 500
  if (status === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 413, body: { error: { message: 'Request body is too large', type: 'invalid_request_error', code: 'request_too_large', param: null } } }
  }
  if (status >= 400 && status < 500) {
    // Fastify's own client errors (bad JSON, bad content type, validation): their messages are safe to show.
    return { status, body: { error: { message: err.message, type: 'invalid_request_error', code: 'invalid_request', param: null } } }
  }
  return { status: 500, body: { error: { message: 'Internal gateway error', type: 'api_error', code: 'internal_error', param: null } } }
}

/*
 * Domain errors: what a module refuses, with its facts in typed fields. They carry no HTTP status; httpErrorOf
 * (below) is the one place that turns them into answers, so the admin routes never translate them by hand.
 */

/** One problem in a configuration or a policy change: where (a JSON pointer) and what is wrong, in words. */
export interface ConfigIssue {
  path: string
  message: string
  /** the value found there, when there is one */
  value?: unknown
  /** what would be accepted there (enum members, property names) */
  allowed?: readonly string[]
  /** the environment variable the value came from */
  envVar?: string
}

/** `path: message`, one line per issue: the text check-config, serve, the admin API and reload all show. */
export function issueLine (i: ConfigIssue): string {
  return `${i.path === '' ? '/' : i.path}: ${i.message}`
}

export type DomainCode =
  | 'GG_CONFIG' | 'GG_POLICY_REJECTED' | 'GG_POLICY_NOT_FOUND' | 'GG_POLICY_CONFLICT' | 'GG_POLICY_STORE_UNAVAILABLE'
  | 'GG_EXPLAIN_QUERY' | 'GG_EXPLAIN_NOT_FOUND' | 'GG_GEO_DATABASE' | 'GG_MMDB_FORMAT' | 'GG_AUDIT_VERIFY' | 'GG_REPORT_PERIOD'
  | 'GG_MODULE_UNAVAILABLE'

export abstract class DomainError extends Error {
  abstract readonly code: DomainCode
}

/** A configuration file (or object) that does not validate: every issue at once. */
export class ConfigError extends DomainError {
  readonly code = 'GG_CONFIG'
  override readonly name = 'ConfigError'
  constructor (readonly source: string, readonly issues: ConfigIssue[]) {
    super(`${source}: ${issues.length} configuration error(s)\n` + issues.map((i) => '  ' + issueLine(i)).join('\n'))
  }
}

/** A change or reload that fails the same checks as the configuration file; nothing was applied. */
export class PolicyRejected extends DomainError {
  readonly code = 'GG_POLICY_REJECTED'
  override readonly name = 'PolicyRejected'
  constructor (readonly what: string, readonly issues: ConfigIssue[]) {
    super(`${what} refused: ${issues.length} error(s): ` + issues.map(issueLine).join('; '))
  }
}

export class PolicyNotFound extends DomainError {
  readonly code = 'GG_POLICY_NOT_FOUND'
  override readonly name = 'PolicyNotFound'
}

export class PolicyConflict extends DomainError {
  readonly code = 'GG_POLICY_CONFLICT'
  override readonly name = 'PolicyConflict'
}

export class PolicyStoreUnavailable extends DomainError {
  readonly code = 'GG_POLICY_STORE_UNAVAILABLE'
  override readonly name = 'PolicyStoreUnavailable'
}

/** An explain query that cannot be answered: a malformed query, or a key or model that does not exist. */
export class ExplainError extends DomainError {
  readonly code: 'GG_EXPLAIN_QUERY' | 'GG_EXPLAIN_NOT_FOUND'
  override readonly name = 'ExplainError'
  constructor (readonly status: 400 | 404, message: string) {
    super(message)
    this.code = status === 404 ? 'GG_EXPLAIN_NOT_FOUND' : 'GG_EXPLAIN_QUERY'
  }
}

/** A database file that cannot be put in service; the message names the file and what is wrong with it. */
export class GeoDatabaseError extends DomainError {
  readonly code = 'GG_GEO_DATABASE'
  override readonly name = 'GeoDatabaseError'
  constructor (readonly path: string, readonly reason: string, options?: { cause?: unknown }) {
    super(`GeoIP database ${path} refused: ${reason}`, options)
  }
}

/** A MaxMind DB file whose structure is broken (sizes, pointers, types). */
export class MmdbFormatError extends DomainError {
  readonly code = 'GG_MMDB_FORMAT'
  override readonly name = 'MmdbFormatError'
}

/** Where an audit chain stops verifying. */
export interface AuditProblem { file: string, line: number | null, seq: number | null, reason: string }

export class AuditVerifyError extends DomainError {
  readonly code = 'GG_AUDIT_VERIFY'
  override readonly name = 'AuditVerifyError'
  constructor (readonly problem: AuditProblem) { super(problem.reason) }
}

/** A report period that is not YYYY, YYYY-MM or YYYY-MM-DD (or names no real month or day). */
export class ReportPeriodError extends DomainError {
  readonly code = 'GG_REPORT_PERIOD'
  override readonly name = 'ReportPeriodError'
  constructor (readonly period: string, message: string) { super(message) }
}

/** A package a feature imports at first use (core/optional.ts) that cannot be loaded: not installed, or broken. */
export class OptionalModuleError extends DomainError {
  readonly code = 'GG_MODULE_UNAVAILABLE'
  override readonly name = 'OptionalModuleError'
  constructor (readonly pkg: string, readonly feature: string, cause: unknown) {
    super(`${feature} needs the package ${pkg}, which could not be loaded: ${cause instanceof Error ? cause.message.split('\n')[0] ?? '' : String(cause)}`, { cause })
  }
}

type HttpError = Error & { code: string, statusCode: number, issues?: ConfigIssue[] }

/**
 * The one translation of domain errors to HTTP answers (400 with every issue, 404, 409, 503 when the shared
 * store is down); anything else is given back unchanged for the error handler to render.
 */
export function httpErrorOf (err: unknown): unknown {
  if (!(err instanceof DomainError)) return err
  const withIssues = (e: HttpError, issues: ConfigIssue[]): HttpError => Object.assign(e, { issues })
  switch (err.code) {
    case 'GG_CONFIG': return withIssues(new InvalidPolicyError(err.message), (err as ConfigError).issues)
    case 'GG_POLICY_REJECTED': return withIssues(new InvalidPolicyError(err.message), (err as PolicyRejected).issues)
    case 'GG_POLICY_NOT_FOUND': case 'GG_EXPLAIN_NOT_FOUND': return new NotFoundError(err.message)
    case 'GG_POLICY_CONFLICT': return new ConflictError(err.message)
    case 'GG_POLICY_STORE_UNAVAILABLE': case 'GG_MODULE_UNAVAILABLE': return new UnavailableError(err.message, { cause: err })
    case 'GG_EXPLAIN_QUERY': case 'GG_REPORT_PERIOD': return new BadRequestError(err.message)
    // not the caller's doing: a 500 that does not show the message (toOpenAIError), logged by the handler
    case 'GG_GEO_DATABASE': case 'GG_MMDB_FORMAT': case 'GG_AUDIT_VERIFY': return err
  }
}
