/*
 * Re-decide a recorded interaction: rebuild what decide() saw from the audit record (where the caller was, who,
 * what was asked) and run it under a policy — the one recorded in the chain (to check a past decision) or a
 * candidate (replay). Records written before they carried capabilities and the rest are re-decided on what they
 * carry and flagged approximate.
 */
import type { InteractionFields } from '../audit/types.js'
import type { GeoResult } from '../geo/types.js'
import { CAPABILITIES, type Capability, type Decision, type Endpoint, type Principal, type RequestShape } from '../core/types.js'
import type { Config } from '../config/schema/index.js'
import { snapshotFromConfig, type PolicySnapshot } from './snapshot.js'
import { decide, type CallerAddress } from './decide.js'
import { endpointCapability } from './endpoint.js'

const ENDPOINTS: ReadonlySet<string> = new Set<Endpoint>([
  'chat.completions', 'completions', 'embeddings', 'models', 'images.generations', 'images.edits', 'images.variations',
  'audio.transcriptions', 'audio.translations', 'audio.speech', 'fine_tuning.jobs', 'responses', 'other'
])
const KNOWN_CAPS: ReadonlySet<string> = new Set(CAPABILITIES)

/** What the policy decided for a record, as recorded: null when the pipeline failed before the policy spoke. */
export interface RecordedVerdict {
  /** the policy refused (enforced, or in shadow mode) */
  refused: boolean
  /** the policy's rule; `allow` (or a clamp rule) for a request that passed the policy and was then limited */
  rule: string
  /** refused by a limit or quota after the policy allowed it (its policy rule is not recorded) */
  limited: boolean
}

export function isLimitRule (rule: string): boolean {
  return rule === 'limit' || rule.startsWith('limit:') || rule.startsWith('quota:')
}

export function recordedVerdict (r: InteractionFields): RecordedVerdict | null {
  if (r.rule === 'none' || r.endpoint === null) return null
  if (isLimitRule(r.rule)) return { refused: false, rule: 'allow', limited: true }
  return { refused: (r.decision === 'deny') || r.shadow, rule: r.rule, limited: false }
}

export interface DecisionInputs {
  shape: RequestShape
  geo: GeoResult
  principal: Principal
  addr: CallerAddress
  /** something decide() reads was not in the record (older record) and was guessed */
  approximate: boolean
  /** the key is not in the policy decided under: its recorded tier was used */
  keyFromRecord: boolean
}

/** decide()'s inputs rebuilt from a record, with the key as `policy` defines it (when it still has that key). */
export function decisionInputs (r: InteractionFields, policy: PolicySnapshot): DecisionInputs | null {
  if (r.endpoint === null || !ENDPOINTS.has(r.endpoint)) return null
  const endpoint = r.endpoint as Endpoint
  let approximate = r.policyVersion === undefined || r.capabilities === undefined || r.address === undefined ||
    r.promptTokens === undefined || r.maxOutputTokens === undefined || r.verifiedEntity === undefined || r.choices === undefined
  let capabilities: Capability[]
  if (r.capabilities !== undefined) {
    capabilities = r.capabilities.filter((c): c is Capability => KNOWN_CAPS.has(c))
  } else {
    // the endpoint's own capability and streaming are known; tool use is not
    const own = endpointCapability(endpoint)
    capabilities = own === null ? [] : [own]
    if (r.stream && own !== null) capabilities.push('streaming')
  }
  const shape: RequestShape = {
    endpoint,
    forwardPath: '',
    model: endpoint === 'models' ? null : r.model,
    capabilities,
    maxOutputTokens: r.maxOutputTokens ?? null,
    choices: r.choices ?? 1,
    promptTokens: r.promptTokens ?? 0,
    stream: r.stream
  }
  const a = r.anonymizer
  const geo: GeoResult = {
    country: r.country,
    subdivisions: r.subdivisions ?? (r.subdivision === null ? [] : [r.subdivision]),
    registeredCountry: null,
    representedCountry: null,
    anonymizer: {
      vpn: a.includes('vpn'),
      tor: a.includes('tor'),
      hosting: a.includes('hosting'),
      publicProxy: a.includes('publicProxy'),
      residentialProxy: a.includes('residentialProxy'),
      any: a.length > 0
    },
    build: r.geodbBuild
  }
  // below the subdivision: what the record kept (a region is known only by the name that decided)
  if (r.city !== undefined) geo.city = { geonameId: r.city, name: null }
  if (r.postalCode !== undefined) geo.postalCode = r.postalCode
  const region = r.locationSource === undefined ? null : /^region:([^~]+)(?:~([\d.]+)km)?$/.exec(r.locationSource)
  if (region !== null) geo.regions = [{ name: region[1] ?? '', inside: region[2] === undefined, distanceKm: Number(region[2] ?? 0) }]
  const key = r.keyId === null ? undefined : policy.keysById.get(r.keyId)
  const keyFromRecord = key === undefined
  if (keyFromRecord && r.verifiedEntity === undefined) approximate = true
  const principal: Principal = key !== undefined
    ? { keyId: key.id, org: key.org, tier: key.tier, country: key.country, verifiedEntity: key.verifiedEntity }
    : { keyId: r.keyId ?? '', org: r.org ?? '', tier: r.keyTier ?? '', country: r.keyCountry ?? undefined, verifiedEntity: r.verifiedEntity ?? false }
  const addr: CallerAddress = r.address === 'internal'
    ? { located: true, internal: true }
    : r.address === 'unlocated' ? { located: false, internal: false } : { located: true, internal: false }
  return { shape, geo, principal, addr, approximate, keyFromRecord }
}

export interface Redecision { decision: Decision, inputs: DecisionInputs }

/** The decision `policy` makes for the interaction a record describes; null when it cannot be re-decided. */
export function redecide (r: InteractionFields, policy: PolicySnapshot): Redecision | null {
  const inputs = decisionInputs(r, policy)
  if (inputs === null) return null
  return { decision: decide(inputs.shape, inputs.geo, inputs.principal, policy, inputs.addr), inputs }
}

/** Does a (re-)decision refuse? Shadow refusals count: the policy said no. */
export function refuses (d: Decision): boolean { return !d.allow }

/**
 * The policy a `policy.version` record carries (its canonical text, policy/version.ts), as a snapshot to decide
 * with. Throws when the text is not a policy, or does not hash to the version it claims.
 */
export function snapshotFromPolicyText (text: string, expectHash?: string): PolicySnapshot {
  const p = JSON.parse(text) as {
    mode: 'enforce' | 'shadow', blockedByUrl: string, locations: Config['locations'], tiers: Config['tiers'], models: Config['models'],
    backendRegions: Record<string, string>, quotas: Config['quotas'], keys: Array<Omit<Config['keys'][number], 'sha256'> & { fingerprint: string }>
  }
  if (p === null || typeof p !== 'object' || typeof p.locations !== 'object' || typeof p.tiers !== 'object') throw new Error('not a policy text')
  const backends: Record<string, { region: string }> = {}
  for (const [name, region] of Object.entries(p.backendRegions ?? {})) backends[name] = { region }
  // Only what decides is in the text; snapshotFromConfig reads nothing else. Keys carry a fingerprint, not their
  // hash: it stands in for the hash (so the text hashes back to its version) and authenticates nothing.
  const keys = (p.keys ?? []).map(({ fingerprint, ...k }) => ({ ...k, sha256: fingerprint }))
  const c = { policy: { mode: p.mode, blockedByUrl: p.blockedByUrl }, locations: p.locations, tiers: p.tiers, models: p.models ?? {}, backends, quotas: p.quotas ?? [], keys } as unknown as Config
  const snap = snapshotFromConfig(c)
  if (expectHash !== undefined && snap.hash !== expectHash) throw new Error(`policy text hashes to ${snap.hash}, not ${expectHash}`)
  return snap
}
