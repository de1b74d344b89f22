/*
 * `geogate policy test`: table-driven expectations of the policy, run offline against a configuration.
 *
 *   tests:
 *     - name: Iran is refused, even a verified entity
 *       who:  { country: IR, key: demo-verified }          # or ip: 5.160.0.1; or tier/org/verified instead of key
 *       what: { model: llama-3.1-8b, capabilities: [tools], maxTokens: 2000 }   # endpoint: chat.completions
 *       when: 2027-01-15T00:00:00Z                          # optional: the policy as of then (its schedule)
 *       expect: { status: 451, rule: location:embargoed }   # also locationTier, keyTier, clamp
 *
 * Pure: the caller supplies the configuration and (for `ip`) the GeoIP lookup.
 */
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseDocument } from 'yaml'
import type { Config } from '../config/schema/index.js'
import { AnonymizerKindSchema, CapabilitySchema } from '../config/schema/index.js'
import { applySchedule, upcomingSwitches } from '../config/schedule.js'
import type { GeoLookup, GeoResult } from '../geo/types.js'
import { unknownGeo } from '../geo/types.js'
import type { Decision, Principal } from '../core/types.js'
import { canonicalIp, isInternalIp } from '../net/address.js'
import type { ClientAddress } from '../net/forwarded.js'
import { snapshotFromConfig, type PolicySnapshot } from './snapshot.js'
import { decide, type CallerAddress } from './decide.js'
import { shapeFor, ExplainError } from './explain.js'
import { locate } from './locate.js'

export const PolicyTestSchema = Type.Object({
  name: Type.Optional(Type.String()),
  who: Type.Object({
    ip: Type.Optional(Type.String({ description: 'located with the configured GeoIP databases' })),
    country: Type.Optional(Type.String({ pattern: '^[A-Z]{2}$' })),
    subdivision: Type.Optional(Type.String({ pattern: '^[A-Z]{2}-[A-Z0-9]{1,3}$' })),
    anonymizer: Type.Optional(Type.Array(AnonymizerKindSchema)),
    key: Type.Optional(Type.String({ description: 'a key id of the configuration' })),
    tier: Type.Optional(Type.String()),
    org: Type.Optional(Type.String()),
    verified: Type.Optional(Type.Boolean()),
    keyCountry: Type.Optional(Type.String({ pattern: '^[A-Z]{2}$' }))
  }, { additionalProperties: false }),
  what: Type.Object({
    model: Type.Optional(Type.String()),
    endpoint: Type.Optional(Type.String({ description: 'chat.completions (default), embeddings, … or a /v1 path' })),
    capabilities: Type.Optional(Type.Array(CapabilitySchema, { description: 'asked for beyond the endpoint: tools, streaming' })),
    maxTokens: Type.Optional(Type.Integer({ minimum: 0 })),
    n: Type.Optional(Type.Integer({ minimum: 1, description: 'outputs asked for (n, or best_of)' })),
    promptTokens: Type.Optional(Type.Integer({ minimum: 0 }))
  }, { additionalProperties: false }),
  when: Type.Optional(Type.String({ description: 'RFC 3339 instant; absent: now' })),
  expect: Type.Object({
    status: Type.Optional(Type.Union([Type.Literal(200), Type.Literal(403), Type.Literal(404), Type.Literal(451)])),
    rule: Type.Optional(Type.String()),
    locationTier: Type.Optional(Type.String()),
    keyTier: Type.Optional(Type.String()),
    clamp: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]))
  }, { additionalProperties: false })
}, { additionalProperties: false })

export const PolicyTestFileSchema = Type.Object({
  tests: Type.Array(PolicyTestSchema, { minItems: 1 })
}, { additionalProperties: false })

export type PolicyTest = Static<typeof PolicyTestSchema>
export type PolicyTestFile = Static<typeof PolicyTestFileSchema>

export interface PolicyTestResult {
  /** file:index and name, for the report */
  id: string
  name: string
  ok: boolean
  /** the fields that differ: [field, expected, got] */
  diffs: Array<[string, string, string]>
  /** the decision (null: the case itself is broken, see error) */
  got: { status: number, rule: string, locationTier: string, keyTier: string, clamp: number | null } | null
  error: string | null
}

export class PolicyTestFileError extends Error {}

/** Parse and check a test file (YAML); every problem in one message. */
export function parsePolicyTests (text: string, source: string): PolicyTestFile {
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) throw new PolicyTestFileError(`${source}: ${doc.errors.map((e) => e.message.split('\n')[0] ?? '').join('; ')}`)
  const data: unknown = doc.toJS()
  return checkPolicyTests(data, source)
}

export function checkPolicyTests (data: unknown, source: string): PolicyTestFile {
  if (!Value.Check(PolicyTestFileSchema, data)) {
    const errs = [...Value.Errors(PolicyTestFileSchema, data)].slice(0, 20).map((e) => `${e.path || '/'}: ${e.message}`)
    throw new PolicyTestFileError(`${source}: ${errs.join('; ')}`)
  }
  return data
}

/** The decision a case stands for, under `config` as of its `when`. */
function runCase (c: PolicyTest, geo: GeoLookup | null, policyAt: (ms: number) => PolicySnapshot, nowMs: number): Decision {
  let at = nowMs
  if (c.when !== undefined) {
    at = Date.parse(c.when)
    if (Number.isNaN(at)) throw new ExplainError(400, `when: not a date and time: ${c.when}`)
  }
  const policy = policyAt(at)
  const w = c.who
  let g: GeoResult
  let addr: CallerAddress = { located: true, internal: false }
  if (w.ip !== undefined) {
    if (w.country !== undefined || w.subdivision !== undefined) throw new ExplainError(400, 'who: give ip, or country/subdivision, not both')
    const ip = canonicalIp(w.ip)
    if (ip === null) throw new ExplainError(400, `who.ip: "${w.ip}" is not an IP address`)
    if (geo === null) throw new ExplainError(400, 'who.ip needs the GeoIP databases')
    const client: ClientAddress = { ip, via: 'socket', located: true, internal: isInternalIp(ip) }
    g = locate(geo, client)
    addr = client
  } else {
    g = unknownGeo(null)
    g.country = w.country ?? (w.subdivision === undefined ? null : w.subdivision.slice(0, 2))
    g.subdivisions = w.subdivision === undefined ? [] : [w.subdivision]
    if (g.country === null) addr = { located: false, internal: false }
  }
  for (const k of w.anonymizer ?? []) {
    const flag = k === 'public-proxy' ? 'publicProxy' : k === 'residential-proxy' ? 'residentialProxy' : k
    g.anonymizer = { ...g.anonymizer, [flag]: true, any: true }
  }
  let principal: Principal
  if (w.key !== undefined) {
    const key = policy.keysById.get(w.key)
    if (key === undefined) throw new ExplainError(404, `who.key: no API key with id "${w.key}"`)
    principal = { keyId: key.id, org: key.org, tier: key.tier, country: key.country, verifiedEntity: key.verifiedEntity }
  } else {
    if (w.tier === undefined) throw new ExplainError(400, 'who: give key, or tier (with org and verified)')
    principal = { keyId: 'policy-test', org: w.org ?? 'policy-test', tier: w.tier, country: w.keyCountry, verifiedEntity: w.verified ?? false }
  }
  if (w.key !== undefined && (w.tier !== undefined || w.verified !== undefined)) throw new ExplainError(400, 'who: give key, or tier/org/verified, not both')
  const caps = c.what.capabilities ?? []
  const shape = shapeFor({
    ip: '', keyId: '', model: c.what.model ?? '', endpoint: c.what.endpoint,
    tools: caps.includes('tools'), stream: caps.includes('streaming'), maxTokens: c.what.maxTokens
  })
  if (c.what.promptTokens !== undefined) shape.promptTokens = c.what.promptTokens
  if (c.what.n !== undefined) shape.choices = c.what.n
  for (const cap of caps) if (!shape.capabilities.includes(cap)) shape.capabilities.push(cap)
  return decide(shape, g, principal, policy, addr)
}

/** The policy of a configuration at any instant: one snapshot per stage of its schedule. */
export function stagedSnapshots (config: Readonly<Config>): (ms: number) => PolicySnapshot {
  const switches = upcomingSwitches(config, -Infinity)
  const snaps = new Map<number, PolicySnapshot>()
  return (ms) => {
    let stage = -1
    for (let i = 0; i < switches.length && (switches[i] as number) <= ms; i++) stage = i
    let snap = snaps.get(stage)
    if (snap === undefined) { snap = snapshotFromConfig(applySchedule(config, stage === -1 ? -Infinity : switches[stage] as number)); snaps.set(stage, snap) }
    return snap
  }
}

/**
 * Run every case; `id` names it in reports (`file.yaml#3`). `policyAt` gives the policy as of a case's `when`
 * (default: the configuration's own schedule; the admin route passes the live policy's).
 */
export function runPolicyTests (cases: ReadonlyArray<{ test: PolicyTest, id: string }>, config: Readonly<Config>, geo: GeoLookup | null,
  nowMs: number = Date.now(), policyAt: (ms: number) => PolicySnapshot = stagedSnapshots(config)): PolicyTestResult[] {
  return cases.map(({ test, id }) => {
    const name = test.name ?? describe(test)
    let d: Decision
    try {
      d = runCase(test, geo, policyAt, nowMs)
    } catch (err) {
      if (!(err instanceof ExplainError)) throw err
      return { id, name, ok: false, diffs: [], got: null, error: err.message }
    }
    const got = { status: d.status, rule: d.rule, locationTier: d.locationTier, keyTier: d.keyTier, clamp: d.clampOutputTokens ?? null }
    const diffs: Array<[string, string, string]> = []
    const e = test.expect
    if (e.status !== undefined && e.status !== got.status) diffs.push(['status', String(e.status), String(got.status)])
    if (e.rule !== undefined && e.rule !== got.rule) diffs.push(['rule', e.rule, got.rule])
    if (e.locationTier !== undefined && e.locationTier !== got.locationTier) diffs.push(['locationTier', e.locationTier, got.locationTier])
    if (e.keyTier !== undefined && e.keyTier !== got.keyTier) diffs.push(['keyTier', e.keyTier, got.keyTier])
    if (e.clamp !== undefined && e.clamp !== got.clamp) diffs.push(['clamp', String(e.clamp), String(got.clamp)])
    return { id, name, ok: diffs.length === 0, diffs, got, error: null }
  })
}

function describe (c: PolicyTest): string {
  const w = c.who
  const who = [w.ip ?? w.subdivision ?? w.country ?? 'unknown place', ...(w.anonymizer ?? []), w.key ?? `tier ${w.tier ?? '?'}`].join(' ')
  const what = [c.what.endpoint ?? 'chat.completions', c.what.model ?? '', ...(c.what.capabilities ?? []), c.what.maxTokens === undefined ? '' : `max_tokens ${c.what.maxTokens}`].filter((s) => s !== '').join(' ')
  return `${who}: ${what}${c.when === undefined ? '' : ` at ${c.when}`}`
}

/** The readable report: every failure with what was expected and what the policy decided, then a tally. */
export function formatPolicyTestResults (results: PolicyTestResult[]): string {
  const out: string[] = []
  for (const r of results) {
    if (r.ok) { out.push(`ok     ${r.id}  ${r.name}`); continue }
    out.push(`FAILED ${r.id}  ${r.name}`)
    if (r.error !== null) { out.push(`         error: ${r.error}`); continue }
    for (const [field, want, got] of r.diffs) out.push(`         ${field.padEnd(12)} expected ${want}, got ${got}`)
    if (r.got !== null) out.push(`         (decided: ${r.got.status} ${r.got.rule}; location tier ${r.got.locationTier}, key tier ${r.got.keyTier})`)
  }
  const failed = results.filter((r) => !r.ok).length
  out.push('', `${results.length - failed} passed, ${failed} failed, ${results.length} expectation(s)`)
  return out.join('\n') + '\n'
}

function xml (s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] ?? c)
}

/** JUnit XML (one testsuite per file), as CI systems read it. */
export function policyTestJunit (results: PolicyTestResult[]): string {
  const byFile = new Map<string, PolicyTestResult[]>()
  for (const r of results) {
    const file = r.id.replace(/#\d+$/, '')
    byFile.set(file, [...(byFile.get(file) ?? []), r])
  }
  const suites = [...byFile.entries()].map(([file, rs]) => {
    const cases = rs.map((r) => {
      const body = r.ok
        ? ''
        : r.error !== null
          ? `<error message="${xml(r.error)}"/>`
          : `<failure message="${xml(r.diffs.map(([f, w, g]) => `${f}: expected ${w}, got ${g}`).join('; '))}"/>`
      return `    <testcase classname="${xml(file)}" name="${xml(`${r.id} ${r.name}`)}">${body}</testcase>`
    }).join('\n')
    const failures = rs.filter((r) => !r.ok && r.error === null).length
    const errors = rs.filter((r) => r.error !== null).length
    return `  <testsuite name="${xml(file)}" tests="${rs.length}" failures="${failures}" errors="${errors}">\n${cases}\n  </testsuite>`
  }).join('\n')
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="geogate policy test">\n${suites}\n</testsuites>\n`
}
