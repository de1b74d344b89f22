import t from 'tap'
import { parseConfig } from '../../src/config/load.js'
import { snapshotFromConfig, type PolicySnapshot } from '../../src/policy/snapshot.js'
import { decide, globMatch, permittedModels, type CallerAddress } from '../../src/policy/decide.js'
import { describeRequest } from '../../src/policy/endpoint.js'
import type { GeoResult, AnonymizerFlags } from '../../src/geo/types.js'
import type { Principal } from '../../src/core/types.js'
import { baseConfig, sha } from '../helpers/gateway.js'

function policy (patch: Record<string, unknown> = {}): PolicySnapshot {
  return snapshotFromConfig(parseConfig(baseConfig('http://127.0.0.1:9', {
    models: {
      'llama-3.1-8b': { backend: 'gpu', classification: 'EAR99' },
      'llama-3.1-70b': { backend: 'gpu', classification: 'EAR99' },
      'frontier-1': { backend: 'gpu', classification: '4E091' }
    },
    locations: {
      tiers: { embargoed: ['CU', 'IR', 'KP', 'SY', 'UA-43', 'UA-14', 'UA-09'], tier1: ['US', 'GB', 'DE', 'UA-30'], restricted: ['CN', 'RU'] },
      default: 'tier2',
      unknown: 'embargoed',
      anonymizers: 'embargoed',
      internal: 'tier1'
    },
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat', 'completions', 'embeddings', 'tools', 'streaming', 'images', 'audio', 'fine-tuning'] },
      tier2: { models: ['llama-*'], capabilities: ['chat', 'embeddings', 'streaming'], maxOutputTokens: 1024 },
      strict: { models: ['llama-*'], capabilities: ['chat'], maxOutputTokens: 256, outputTokens: 'reject', maxContextTokens: 100 },
      restricted: { models: ['*'], classifications: ['EAR99'], capabilities: ['chat'] },
      embargoed: { deny: true }
    },
    keys: [
      { id: 'k1', sha256: sha('a'), org: 'A', tier: 'tier1' },
      { id: 'k2', sha256: sha('b'), org: 'B', tier: 'tier2' },
      { id: 'ks', sha256: sha('c'), org: 'C', tier: 'strict' },
      { id: 'kv', sha256: sha('d'), org: 'D', tier: 'tier1', verifiedEntity: true },
      { id: 'ke', sha256: sha('e'), org: 'E', tier: 'embargoed' }
    ],
    ...patch
  })))
}

const none: AnonymizerFlags = { vpn: false, tor: false, hosting: false, publicProxy: false, residentialProxy: false, any: false }
function geo (country: string | null, subdivisions: string[] = [], anon: Partial<AnonymizerFlags> = {}): GeoResult {
  const a = { ...none, ...anon }
  a.any = a.vpn || a.tor || a.hosting || a.publicProxy || a.residentialProxy
  return { country, subdivisions, registeredCountry: country, representedCountry: null, anonymizer: a, build: '2026-06-17T19:51:40.000Z' }
}
const who = (tier: string, verifiedEntity = false): Principal => ({ keyId: 'k', org: 'o', tier, verifiedEntity })
const chat = (body: Record<string, unknown> = {}): ReturnType<typeof describeRequest> =>
  describeRequest('POST', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], ...body })

interface Row {
  name: string
  shape?: ReturnType<typeof describeRequest>
  geo: GeoResult
  key: Principal
  addr?: CallerAddress
  allow: boolean
  status: number
  rule: string
  locationTier?: string
  source?: string
  clamp?: number
}

const P = policy()
const rows: Row[] = [
  { name: 'tier1 country, tier1 key', geo: geo('US'), key: who('tier1'), allow: true, status: 200, rule: 'allow', locationTier: 'tier1', source: 'country:US' },
  { name: 'embargoed country', geo: geo('CU'), key: who('tier1'), allow: false, status: 451, rule: 'location:embargoed', source: 'country:CU' },
  { name: 'embargoed country, verified entity is still refused', geo: geo('IR'), key: who('tier1', true), allow: false, status: 451, rule: 'location:embargoed' },
  { name: 'subdivision wins over its country (Crimea)', geo: geo('UA', ['UA-43']), key: who('tier1'), allow: false, status: 451, rule: 'location:embargoed', source: 'subdivision:UA-43' },
  { name: 'subdivision wins over default (Kyiv city tier1)', geo: geo('UA', ['UA-30']), key: who('tier1'), allow: true, status: 200, rule: 'allow', locationTier: 'tier1', source: 'subdivision:UA-30' },
  { name: 'unlisted subdivision falls back to the country', geo: geo('UA', ['UA-46']), key: who('tier1'), allow: true, status: 200, rule: 'tier:tier2:max-output-tokens:clamp', clamp: 1024, locationTier: 'tier2', source: 'default' },
  { name: 'most specific subdivision first', geo: geo('UA', ['UA-30', 'UA-43']), key: who('tier1'), allow: false, status: 451, rule: 'location:embargoed', source: 'subdivision:UA-43' },
  { name: 'default tier for other countries', geo: geo('BR'), key: who('tier1'), allow: true, status: 200, rule: 'tier:tier2:max-output-tokens:clamp', clamp: 1024, locationTier: 'tier2', source: 'default' },
  { name: 'unknown location', geo: geo(null), key: who('tier1'), allow: false, status: 451, rule: 'location:unknown', source: 'unknown' },
  { name: 'Tor exit in a tier1 country', geo: geo('DE', [], { tor: true }), key: who('tier1'), allow: false, status: 451, rule: 'anonymizer:tor', source: 'anonymizer:tor' },
  { name: 'VPN caller', geo: geo('US', [], { vpn: true }), key: who('tier1'), allow: false, status: 451, rule: 'anonymizer:vpn' },
  { name: 'public proxy caller', geo: geo('GB', [], { publicProxy: true }), key: who('tier1'), allow: false, status: 451, rule: 'anonymizer:public-proxy' },
  { name: 'residential proxy caller', geo: geo('GB', [], { residentialProxy: true }), key: who('tier1'), allow: false, status: 451, rule: 'anonymizer:residential-proxy' },
  { name: 'hosting provider is not an anonymizer by default', geo: geo('US', [], { hosting: true }), key: who('tier1'), allow: true, status: 200, rule: 'allow', locationTier: 'tier1' },
  { name: 'verified entity behind a VPN keeps its place tier', geo: geo('US', [], { vpn: true }), key: who('tier1', true), allow: true, status: 200, rule: 'allow', locationTier: 'tier1', source: 'country:US' },
  { name: 'anonymizer in an embargoed country stays embargoed by place', geo: geo('IR', [], { vpn: true }), key: who('tier1', true), allow: false, status: 451, rule: 'location:embargoed', source: 'country:IR' },
  { name: 'internal address gets locations.internal', geo: geo(null), key: who('tier1'), addr: { located: true, internal: true }, allow: true, status: 200, rule: 'allow', locationTier: 'tier1', source: 'internal' },
  { name: 'unlocatable address is unknown even with a country', geo: geo('US'), key: who('tier1'), addr: { located: false, internal: false }, allow: false, status: 451, rule: 'location:unknown' },
  { name: 'unknown model is 404 model:unknown', shape: chat({ model: 'gpt-99' }), geo: geo('US'), key: who('tier1'), allow: false, status: 404, rule: 'model:unknown' },
  { name: 'location refusal comes before unknown model', shape: chat({ model: 'gpt-99' }), geo: geo('CU'), key: who('tier1'), allow: false, status: 451, rule: 'location:embargoed' },
  { name: 'location tier forbids the model', shape: chat({ model: 'frontier-1' }), geo: geo('BR'), key: who('tier1'), allow: false, status: 403, rule: 'tier:tier2:model' },
  { name: 'key tier forbids the model', shape: chat({ model: 'frontier-1' }), geo: geo('US'), key: who('tier2'), allow: false, status: 403, rule: 'key-tier:tier2:model' },
  { name: 'classification outside the tier', shape: chat({ model: 'frontier-1' }), geo: geo('CN'), key: who('tier1'), allow: false, status: 403, rule: 'tier:restricted:classification' },
  { name: 'classification inside the tier', shape: chat({ model: 'llama-3.1-70b' }), geo: geo('RU'), key: who('tier1'), allow: true, status: 200, rule: 'allow', locationTier: 'restricted' },
  { name: 'key tier deny', geo: geo('US'), key: who('embargoed'), allow: false, status: 403, rule: 'key-tier:embargoed:deny' },
  { name: 'key tier that does not exist fails closed', geo: geo('US'), key: who('gone'), allow: false, status: 403, rule: 'key-tier:gone:undefined' },
  { name: 'tools refused by the location tier', shape: chat({ tools: [{ type: 'function', function: { name: 'f' } }] }), geo: geo('BR'), key: who('tier1'), allow: false, status: 403, rule: 'tier:tier2:capability:tools' },
  { name: 'tools refused by the key tier', shape: chat({ tool_choice: 'required' }), geo: geo('US'), key: who('tier2'), allow: false, status: 403, rule: 'key-tier:tier2:capability:tools' },
  { name: 'legacy functions are tools', shape: chat({ functions: [{ name: 'f' }] }), geo: geo('US'), key: who('tier2'), allow: false, status: 403, rule: 'key-tier:tier2:capability:tools' },
  { name: 'streaming allowed on both', shape: chat({ stream: true }), geo: geo('US'), key: who('tier2'), allow: true, status: 200, rule: 'key-tier:tier2:max-output-tokens:clamp', clamp: 1024 },
  { name: 'streaming refused by the key tier', shape: chat({ stream: true }), geo: geo('US'), key: who('strict'), allow: false, status: 403, rule: 'key-tier:strict:capability:streaming' },
  { name: 'completions refused by the key tier', shape: describeRequest('POST', '/v1/completions', { model: 'llama-3.1-8b', prompt: 'x' }), geo: geo('US'), key: who('tier2'), allow: false, status: 403, rule: 'key-tier:tier2:capability:completions' },
  { name: 'images refused by the location tier', shape: describeRequest('POST', '/v1/images/generations', { model: 'llama-3.1-8b', prompt: 'x' }), geo: geo('BR'), key: who('tier1'), allow: false, status: 403, rule: 'tier:tier2:capability:images' },
  { name: 'fine-tuning allowed for tier1 everywhere tier1', shape: describeRequest('POST', '/v1/fine_tuning/jobs', { model: 'llama-3.1-8b', training_file: 'f' }), geo: geo('US'), key: who('tier1'), allow: true, status: 200, rule: 'allow' },
  { name: 'max_tokens over a clamp tier is clamped', shape: chat({ max_tokens: 5000 }), geo: geo('BR'), key: who('tier1'), allow: true, status: 200, rule: 'tier:tier2:max-output-tokens:clamp', clamp: 1024 },
  { name: 'max_tokens under the bound passes untouched', shape: chat({ max_tokens: 100 }), geo: geo('BR'), key: who('tier1'), allow: true, status: 200, rule: 'allow' },
  { name: 'no max_tokens under a bounded tier gets the bound', shape: chat(), geo: geo('BR'), key: who('tier1'), allow: true, status: 200, rule: 'tier:tier2:max-output-tokens:clamp', clamp: 1024 },
  { name: 'max_tokens over a reject tier is refused', shape: chat({ max_tokens: 257 }), geo: geo('US'), key: who('strict'), allow: false, status: 403, rule: 'key-tier:strict:max-output-tokens' },
  { name: 'max_completion_tokens counts too', shape: chat({ max_completion_tokens: 257 }), geo: geo('US'), key: who('strict'), allow: false, status: 403, rule: 'key-tier:strict:max-output-tokens' },
  { name: 'the larger of the two bounds is checked', shape: chat({ max_tokens: 10, max_completion_tokens: 9000 }), geo: geo('US'), key: who('strict'), allow: false, status: 403, rule: 'key-tier:strict:max-output-tokens' },
  { name: 'smallest clamp of both tiers wins', shape: chat({ max_tokens: 200 }), geo: geo('BR'), key: who('strict'), allow: true, status: 200, rule: 'allow' },
  { name: 'prompt over maxContextTokens', shape: chat({ messages: [{ role: 'user', content: 'x'.repeat(1000) }] }), geo: geo('US'), key: who('strict'), allow: false, status: 403, rule: 'key-tier:strict:max-context-tokens' },
  { name: 'embeddings are never clamped', shape: describeRequest('POST', '/v1/embeddings', { model: 'llama-3.1-8b', input: 'x' }), geo: geo('BR'), key: who('tier2'), allow: true, status: 200, rule: 'allow' },
  { name: 'listing models from an embargoed place', shape: describeRequest('GET', '/v1/models', undefined), geo: geo('KP'), key: who('tier1'), allow: false, status: 451, rule: 'location:embargoed' },
  { name: 'listing models elsewhere', shape: describeRequest('GET', '/v1/models', undefined), geo: geo('BR'), key: who('tier2'), allow: true, status: 200, rule: 'allow' }
]

t.test('decide(): table', async (t) => {
  for (const r of rows) {
    const d = decide(r.shape ?? chat(), r.geo, r.key, P, r.addr)
    t.equal(d.allow, r.allow, `${r.name}: allow`)
    t.equal(d.status, r.status, `${r.name}: status`)
    t.equal(d.rule, r.rule, `${r.name}: rule`)
    t.equal(d.shadow, false, `${r.name}: enforced`)
    t.equal(d.keyTier, r.key.tier, `${r.name}: key tier`)
    if (r.locationTier !== undefined) t.equal(d.locationTier, r.locationTier, `${r.name}: location tier`)
    if (r.source !== undefined) t.equal(d.locationSource, r.source, `${r.name}: location source`)
    t.equal(d.clampOutputTokens, r.clamp, `${r.name}: clamp`)
    if (!d.allow) {
      t.notMatch(d.message, /\btier[12]\b|embargoed|strict|restricted|location:|key-tier|anonymizer:/, `${r.name}: message does not reveal the policy`)
    }
  }
})

t.test('messages say what was refused', async (t) => {
  t.equal(decide(chat(), geo('CU'), who('tier1'), P).message, 'This service is not available in your location')
  t.match(decide(chat(), geo('US', [], { tor: true }), who('tier1'), P).message, /anonymizing network/)
  t.equal(decide(chat({ model: 'frontier-1' }), geo('US'), who('tier2'), P).message, 'The model `frontier-1` is not available on your plan')
  t.equal(decide(chat({ tools: [{}] }), geo('BR'), who('tier1'), P).message, 'The capability `tools` is not permitted from your location')
})

t.test('shadow mode: refusals are decided and flagged, never enforced; unknown models stay 404', async (t) => {
  const S = policy({ policy: { mode: 'shadow' } })
  const d = decide(chat(), geo('CU'), who('tier1'), S)
  t.same([d.allow, d.shadow, d.status, d.rule], [false, true, 451, 'location:embargoed'])
  const c = decide(chat({ max_tokens: 5000 }), geo('BR'), who('tier1'), S)
  t.same([c.allow, c.shadow, c.rule, c.clampOutputTokens], [true, true, 'tier:tier2:max-output-tokens:clamp', undefined], 'a clamp is recorded but not applied')
  const m = decide(chat({ model: 'nope' }), geo('US'), who('tier1'), S)
  t.same([m.allow, m.shadow, m.status], [false, false, 404])
  const ok = decide(chat(), geo('US'), who('tier1'), S)
  t.same([ok.allow, ok.shadow], [true, false])
})

t.test('anonymizerKinds can include hosting; internal absent means unknown', async (t) => {
  const H = policy({
    locations: { tiers: { embargoed: ['CU'], tier1: ['US'] }, default: 'tier2', unknown: 'embargoed', anonymizers: 'embargoed', anonymizerKinds: ['hosting'] }
  })
  t.equal(decide(chat(), geo('US', [], { hosting: true }), who('tier1'), H).rule, 'anonymizer:hosting')
  t.equal(decide(chat(), geo('US', [], { tor: true }), who('tier1'), H).rule, 'allow', 'kinds not listed do not count')
  const d = decide(chat(), geo(null), who('tier1'), H, { located: true, internal: true })
  t.same([d.status, d.rule, d.locationSource], [451, 'location:unknown', 'internal'])
})

t.test('permittedModels: both tiers, globs and classifications', async (t) => {
  t.same(permittedModels(P, 'tier1', 'tier1'), ['frontier-1', 'llama-3.1-70b', 'llama-3.1-8b'])
  t.same(permittedModels(P, 'tier2', 'tier1'), ['llama-3.1-70b', 'llama-3.1-8b'])
  t.same(permittedModels(P, 'restricted', 'tier1'), ['llama-3.1-70b', 'llama-3.1-8b'])
  t.same(permittedModels(P, 'embargoed', 'tier1'), [])
  t.same(permittedModels(P, 'tier1', 'nope'), [])
})

t.test('globMatch', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['*', 'anything', true], ['llama-*', 'llama-3.1-8b', true], ['llama-*', 'xllama-3', false], ['llama-*', 'llama-', true],
    ['*-8b', 'llama-3.1-8b', true], ['*-8b', 'llama-3.1-8b-x', false], ['l?ama', 'llama', true], ['l?ama', 'lama', false],
    ['a*b*c', 'aXXbYYc', true], ['a*b*c', 'aXXbYY', false], ['exact', 'exact', true], ['exact', 'Exact', false], ['', '', true], ['', 'x', false],
    ['org/*', 'org/model', true], ['*', '', true]
  ]
  for (const [p, s, want] of cases) t.equal(globMatch(p, s), want, `${p} ~ ${s}`)
})
