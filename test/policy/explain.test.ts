import t from 'tap'
import pino from 'pino'
import { parseConfig } from '../../src/config/load.js'
import { snapshotFromConfig } from '../../src/policy/snapshot.js'
import { openGeo, embeddedDatabasePath } from '../../src/geo/service.js'
import { explain, formatTrace, ExplainError } from '../../src/policy/explain.js'
import { baseConfig, sha } from '../helpers/gateway.js'

const config = parseConfig(baseConfig('http://127.0.0.1:9', {
  locations: { tiers: { embargoed: ['CU', 'IR'], tier1: ['US', 'GB'] }, default: 'tier2', unknown: 'embargoed', anonymizers: 'embargoed', internal: 'tier1' },
  keys: [
    { id: 'k1', sha256: sha('a'), org: 'Org One', tier: 'tier1', country: 'US' },
    { id: 'k2', sha256: sha('b'), org: 'Org Two', tier: 'tier2', verifiedEntity: true }
  ]
}))

t.test('explain: the whole trace of one decision', async (t) => {
  const geo = await openGeo(config.geo, process.cwd(), pino({ level: 'silent' }))
  t.teardown(async () => { await geo.close() })
  const policy = snapshotFromConfig(config)

  const cu = explain(policy, geo, { ip: '::ffff:152.206.0.1', keyId: 'k1', model: 'llama-3.1-8b' })
  t.equal(cu.client.ip, '152.206.0.1', 'the address is canonicalised first')
  t.equal(cu.location.country, 'CU')
  t.equal(cu.location.source, 'country:CU')
  t.equal(cu.locationTier, 'embargoed')
  t.equal(cu.keyTier, 'tier1')
  t.equal(cu.rule, 'location:embargoed')
  t.same(cu.decision, { outcome: 'deny', status: 451, code: 'geo_restricted', message: 'This service is not available in your location', clampOutputTokens: null })
  t.equal(cu.geo.databases.length, 1)
  t.equal(cu.geo.databases[0]?.path, embeddedDatabasePath())
  t.match(cu.geo.databases[0]?.buildEpoch, /^\d{4}-\d\d-\d\dT/)
  t.equal(cu.geo.build, cu.geo.databases[0]?.buildEpoch, 'the build date the decision used')
  t.same(cu.key, { id: 'k1', org: 'Org One', tier: 'tier1', country: 'US', verifiedEntity: false })
  t.same(cu.policy, { version: 1, hash: policy.hash, mode: 'enforce', at: null }, 'the version audit records carry, and as of now')

  const us = explain(policy, geo, { ip: '8.8.8.8', keyId: 'k2', model: 'frontier-1' })
  t.same([us.location.country, us.locationTier, us.keyTier, us.rule, us.decision.status, us.decision.code], ['US', 'tier1', 'tier2', 'key-tier:tier2:model', 403, 'capability_not_permitted'])

  const clamp = explain(policy, geo, { ip: '8.8.8.8', keyId: 'k2', model: 'llama-3.1-8b', maxTokens: 4096, stream: true })
  t.same([clamp.decision.outcome, clamp.rule, clamp.decision.clampOutputTokens], ['allow', 'key-tier:tier2:max-output-tokens:clamp', 1024])
  t.same(clamp.request.capabilities, ['chat', 'streaming'])

  const tools = explain(policy, geo, { ip: '8.8.8.8', keyId: 'k2', model: 'llama-3.1-8b', tools: true })
  t.equal(tools.rule, 'key-tier:tier2:capability:tools')

  const emb = explain(policy, geo, { ip: '8.8.8.8', keyId: 'k1', model: 'llama-3.1-8b', endpoint: '/v1/embeddings' })
  t.same([emb.request.endpoint, emb.rule], ['embeddings', 'allow'])
  const models = explain(policy, geo, { ip: '8.8.8.8', keyId: 'k1', model: 'x', endpoint: 'models' })
  t.same([models.request.endpoint, models.rule], ['models', 'allow'])

  const local = explain(policy, geo, { ip: '127.0.0.1', keyId: 'k1', model: 'frontier-1' })
  t.same([local.client.internal, local.location.source, local.locationTier, local.rule], [true, 'internal', 'tier1', 'allow'])

  const unknownModel = explain(policy, geo, { ip: '8.8.8.8', keyId: 'k1', model: 'nope' })
  t.same([unknownModel.rule, unknownModel.decision.status, unknownModel.decision.code], ['model:unknown', 404, 'model_not_found'])

  const text = formatTrace(cu)
  for (const want of ['152.206.0.1', 'CU', 'embargoed (from country:CU)', 'location:embargoed', 'DENY 451 geo_restricted', embeddedDatabasePath()]) t.ok(text.includes(want), `text shows ${want}`)

  t.throws(() => explain(policy, geo, { ip: 'nope', keyId: 'k1', model: 'm' }), new ExplainError(400, '"nope" is not an IP address'))
  const status = (fn: () => unknown): number => {
    try { fn() } catch (err) { return err instanceof ExplainError ? err.status : 0 }
    return -1
  }
  t.equal(status(() => explain(policy, geo, { ip: '8.8.8.8', keyId: 'zz', model: 'm' })), 404)
  t.equal(status(() => explain(policy, geo, { ip: '8.8.8.8', keyId: 'k1', model: 'm', endpoint: 'teleport' })), 400)
})
