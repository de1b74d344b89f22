/*
 * "Why would IP X with key Y get model Z?" — the same decide() the data plane runs, on a synthetic request,
 * with every input and intermediate step laid out: what an auditor needs to check a decision, and what ops need
 * before rolling out a policy change.
 */
import type { Capability, KeyConfig } from '../config/schema/index.js'
import type { AnonymizerFlags, GeoLookup, GeoPoint, RegionHit } from '../geo/types.js'
import type { Decision, Endpoint, RequestShape } from '../core/types.js'
import { decisionCode } from '../core/errors.js'
import { principalOf, type PolicySnapshot } from './snapshot.js'
import { canonicalIp, isInternalIp } from '../net/address.js'
import type { ClientAddress } from '../net/forwarded.js'
import { describeRequest, ENDPOINT_PATHS } from './endpoint.js'
import { decide } from './decide.js'
import { locate } from './locate.js'

export interface ExplainQuery {
  ip: string
  keyId: string
  model: string
  /** endpoint name (`chat.completions`) or path (`/v1/chat/completions`); default chat.completions */
  endpoint?: string | undefined
  tools?: boolean | undefined
  stream?: boolean | undefined
  maxTokens?: number | undefined
}

export interface ExplainTrace {
  query: ExplainQuery
  client: { ip: string, internal: boolean }
  location: {
    country: string | null
    subdivisions: string[]
    registeredCountry: string | null
    representedCountry: string | null
    anonymizer: AnonymizerFlags
    /** what gave the location tier: region:dnr, postal:UA:83001, city:709717, subdivision:UA-43, country:CU, default, unknown, internal, anonymizer:tor */
    source: string
    /** below the subdivision, when a City database knows it */
    city?: { geonameId: number, name: string | null }
    postalCode?: string
    point?: GeoPoint
    regions?: RegionHit[]
  }
  /** screening state of the key: active, review or suspended, with the list entry (or mismatch) behind it */
  party: { status: 'active' | 'review' | 'suspended', screening: KeyConfig['screening'] | null, countryMismatch: NonNullable<Decision['countryMismatch']> | null }
  geo: {
    /** build date of the oldest layer that answered */
    build: string | null
    databases: Array<{ path: string, databaseType: string, buildEpoch: string, ageDays: number }>
    stale: boolean
  }
  key: { id: string, org: string, tier: string, country: string | null, verifiedEntity: boolean }
  /** the model's export metadata and where it is served (null: not a configured model) */
  model: { name: string, classification: string, origin: string | null, servingRegions: string[] } | null
  request: Pick<RequestShape, 'endpoint' | 'forwardPath' | 'model' | 'capabilities' | 'maxOutputTokens'>
  locationTier: string
  keyTier: string
  rule: string
  decision: {
    /** what the data plane does: allow, deny, or shadow (refused but forwarded) */
    outcome: 'allow' | 'deny' | 'shadow'
    status: Decision['status']
    code: string | null
    message: string
    clampOutputTokens: number | null
  }
  /** hash: the policyVersion audit records carry; at: the instant the policy was taken as of (null: now) */
  policy: { version: number, hash: string, mode: 'enforce' | 'shadow', at: string | null }
}

/** A query that cannot be explained: the status is what the admin route answers. */
export class ExplainError extends Error {
  constructor (readonly status: 400 | 404, message: string) { super(message); this.name = 'ExplainError' }
}

/** The request shape a synthetic query stands for (explain, policy tests). */
export function shapeFor (q: ExplainQuery): RequestShape {
  const e = q.endpoint ?? 'chat.completions'
  const path = e.startsWith('/') ? e : ENDPOINT_PATHS.get(e as Endpoint)
  if (path === undefined) throw new ExplainError(400, `unknown endpoint "${e}"; one of ${[...ENDPOINT_PATHS.keys()].join(', ')} or a /v1 path`)
  const method = path.startsWith('/v1/models') ? 'GET' : 'POST'
  const body: Record<string, unknown> = { model: q.model }
  if (q.stream === true) body.stream = true
  if (q.tools === true) body.tools = [{ type: 'function', function: { name: 'explain', parameters: { type: 'object' } } }]
  if (q.maxTokens !== undefined) body.max_tokens = q.maxTokens
  try {
    // listing models is about the caller, not one model
    const shape = describeRequest(method, path, body)
    return shape.endpoint === 'models' ? { ...shape, model: null } : shape
  } catch (err) {
    throw new ExplainError(400, `endpoint "${e}": ${(err as Error).message}`)
  }
}

/** Explain one decision against this policy and these databases (`backends`: for the serving regions). */
export function explain (policy: PolicySnapshot, geo: GeoLookup, q: ExplainQuery, backends: Readonly<Record<string, { region: string }>> = {}, at: string | null = null): ExplainTrace {
  const ip = canonicalIp(q.ip)
  if (ip === null) throw new ExplainError(400, `"${q.ip}" is not an IP address`)
  const key = policy.keysById.get(q.keyId)
  if (key === undefined) throw new ExplainError(404, `no API key with id "${q.keyId}"`)
  const shape = shapeFor(q)
  const client: ClientAddress = { ip, via: 'socket', located: true, internal: isInternalIp(ip) }
  const g = locate(geo, client)
  const d = decide(shape, g, principalOf(key), policy, client)
  const capabilities: Capability[] = shape.capabilities
  const modelCfg = policy.models.get(q.model)
  return {
    query: q,
    client: { ip, internal: client.internal },
    location: {
      country: g.country,
      subdivisions: g.subdivisions,
      registeredCountry: g.registeredCountry,
      representedCountry: g.representedCountry,
      anonymizer: g.anonymizer,
      source: d.locationSource ?? 'unknown',
      ...(g.city === undefined ? {} : { city: g.city }),
      ...(g.postalCode === undefined ? {} : { postalCode: g.postalCode }),
      ...(g.location === undefined ? {} : { point: g.location }),
      ...(g.regions === undefined ? {} : { regions: g.regions })
    },
    party: { status: key.status ?? 'active', screening: key.screening ?? null, countryMismatch: d.countryMismatch ?? null },
    geo: {
      build: g.build,
      databases: geo.info().map((i) => ({ path: i.path, databaseType: i.databaseType, buildEpoch: i.buildEpoch, ageDays: Math.floor(i.ageDays) })),
      stale: geo.stale()
    },
    key: { id: key.id, org: key.org, tier: key.tier, country: key.country ?? null, verifiedEntity: key.verifiedEntity },
    model: modelCfg === undefined
      ? null
      : {
          name: q.model,
          classification: modelCfg.classification,
          origin: modelCfg.origin ?? null,
          servingRegions: [...new Set([modelCfg.backend, ...(modelCfg.backends ?? [])].map((b) => (Object.hasOwn(backends, b) ? backends[b]?.region : undefined)).filter((r): r is string => r !== undefined))]
        },
    request: { endpoint: shape.endpoint, forwardPath: shape.forwardPath, model: q.model, capabilities, maxOutputTokens: shape.maxOutputTokens },
    locationTier: d.locationTier,
    keyTier: d.keyTier,
    rule: d.rule,
    decision: {
      outcome: d.allow ? 'allow' : d.shadow ? 'shadow' : 'deny',
      status: d.status,
      code: d.code ?? decisionCode(d.status),
      message: d.message,
      clampOutputTokens: d.clampOutputTokens ?? null
    },
    policy: { version: policy.version, hash: policy.hash, mode: policy.mode, at }
  }
}

/** The trace as a few aligned lines, for a terminal. */
export function formatTrace (t: ExplainTrace): string {
  const flags = Object.entries(t.location.anonymizer).filter(([k, v]) => k !== 'any' && v).map(([k]) => k)
  const lines: Array<[string, string]> = [
    ['client ip', `${t.client.ip}${t.client.internal ? ' (internal)' : ''}`],
    ['country', t.location.country ?? 'unknown'],
    ['subdivisions', t.location.subdivisions.join(', ') || '-'],
    ...(t.location.city === undefined ? [] : [['city', `${t.location.city.name ?? '?'} (GeoNames ${t.location.city.geonameId})`] as [string, string]]),
    ...(t.location.postalCode === undefined ? [] : [['postal code', t.location.postalCode] as [string, string]]),
    ...(t.location.point === undefined ? [] : [['point', `${t.location.point.latitude}, ${t.location.point.longitude} ±${t.location.point.accuracyRadiusKm ?? '?'} km`] as [string, string]]),
    ...(t.location.regions === undefined || t.location.regions.length === 0 ? [] : [['regions', t.location.regions.map((r) => r.inside ? r.name : `${r.name} (edge ${r.distanceKm} km away, within the accuracy radius)`).join(', ')] as [string, string]]),
    ['registered', t.location.registeredCountry ?? '-'],
    ['anonymizer', flags.join(', ') || 'none'],
    ...t.geo.databases.map((d, i): [string, string] => [`geodb[${i}]`, `${d.path} (${d.databaseType}, built ${d.buildEpoch}, ${d.ageDays} days old)`]),
    ['geodb stale', t.geo.stale ? 'yes' : 'no'],
    ['key', `${t.key.id} (${t.key.org}, tier ${t.key.tier}${t.key.verifiedEntity ? ', verified entity' : ''})`],
    ['request', `${t.request.endpoint} ${t.request.model ?? ''} [${t.request.capabilities.join(', ')}]`],
    ['model', t.model === null ? 'not configured' : `${t.model.classification}${t.model.origin === null ? '' : `, origin ${t.model.origin}`}, served in ${t.model.servingRegions.join(', ') || '-'}`],
    ['location tier', `${t.locationTier} (from ${t.location.source})`],
    ['key tier', t.keyTier],
    ...(t.party.status === 'active' && t.party.countryMismatch === null ? [] : [['party', `${t.party.status}` +
      (t.party.screening?.entryId === undefined ? '' : `: ${t.party.screening.entryName ?? ''} (${t.party.screening.entryId}) on ${t.party.screening.source ?? '?'}, score ${t.party.screening.score ?? '?'}`) +
      (t.party.screening?.detail === undefined ? '' : `: ${t.party.screening.detail}`) +
      (t.party.countryMismatch === null ? '' : `; declared ${t.party.countryMismatch.declared}, calling from ${t.party.countryMismatch.actual} (${t.party.countryMismatch.action})`)] as [string, string]]),
    ['rule', t.rule],
    ['decision', `${t.decision.outcome.toUpperCase()} ${t.decision.status}${t.decision.code === null ? '' : ' ' + t.decision.code}` +
      (t.decision.clampOutputTokens === null ? '' : `, max_tokens clamped to ${t.decision.clampOutputTokens}`)],
    ['caller sees', t.decision.message],
    ['policy', `${t.policy.hash}, mode ${t.policy.mode}${t.policy.at === null ? '' : `, as of ${t.policy.at}`}`]
  ]
  return lines.map(([k, v]) => `${k.padEnd(14)} ${v}`).join('\n') + '\n'
}
