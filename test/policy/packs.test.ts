/* Every shipped policy pack validates, carries its warning, and decides as its comments say. */
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import pino from 'pino'
import { loadConfig } from '../../src/config/load.js'
import { snapshotFromConfig } from '../../src/policy/snapshot.js'
import { openGeo } from '../../src/geo/service.js'
import { explain } from '../../src/policy/explain.js'
import { decide } from '../../src/policy/decide.js'
import { describeRequest } from '../../src/policy/endpoint.js'
import { unknownGeo } from '../../src/geo/types.js'

const dir = fileURLToPath(new URL('../../config/packs/', import.meta.url))

t.test('every pack validates against the schema and says it is an example, not legal advice', async (t) => {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'))
  t.ok(files.length >= 1)
  for (const f of files) {
    const text = await readFile(join(dir, f), 'utf8')
    t.match(text, /NOT LEGAL ADVICE/, `${f}: warning`)
    t.match(f, /\.example\.yaml$/, `${f}: named as an example`)
    const { config } = await loadConfig(join(dir, f), {})
    t.ok(config.locations.tiers, `${f}: loads`)
  }
})

t.test('the US AI export tiers example decides as documented', async (t) => {
  const { config } = await loadConfig(join(dir, 'us-ai-export-tiers.example.yaml'), {})
  const policy = snapshotFromConfig(config)
  const tierOf = (place: string): string | undefined => Object.entries(config.locations.tiers).find(([, places]) => places.includes(place))?.[0]
  for (const p of ['CU', 'IR', 'KP', 'UA-43', 'UA-40', 'UA-14', 'UA-09']) t.equal(tierOf(p), 'embargoed', p)
  t.equal(tierOf('SY'), 'syria-ear99', 'Syria since the end of its OFAC program: EAR99 models only')
  t.same(config.tiers['syria-ear99']?.classifications, ['EAR99'])
  for (const p of ['US', 'GB', 'JP', 'KR', 'TW', 'AU', 'CA', 'NZ', 'NO']) t.equal(tierOf(p), 'allied', p)
  for (const p of ['CN', 'MO', 'RU', 'BY']) t.equal(tierOf(p), 'restricted', p)
  t.equal(tierOf('UA'), undefined, 'the rest of Ukraine is the default tier')
  t.same([config.locations.default, config.locations.unknown, config.locations.anonymizers], ['standard', 'embargoed', 'embargoed'])

  const geo = await openGeo(config.geo, process.cwd(), pino({ level: 'silent' }))
  t.teardown(async () => { await geo.close() })
  const rule = (ip: string, keyId: string, model: string): string => explain(policy, geo, { ip, keyId, model }).rule
  t.equal(rule('5.160.0.1', 'demo-verified', 'llama-3.1-8b'), 'location:embargoed', 'IR: nothing, even for a verified entity')
  t.equal(rule('8.8.8.8', 'demo-tier1', 'frontier-1'), 'allow', 'US: the controlled model')
  t.equal(rule('200.160.2.3', 'demo-tier1', 'frontier-1'), 'tier:standard:classification', 'BR (default): no 4E091 model')
  t.equal(rule('200.160.2.3', 'demo-tier1', 'llama-3.1-8b'), 'tier:standard:max-output-tokens:clamp', 'BR: open model, bounded output')
  t.equal(rule('223.5.5.5', 'demo-tier1', 'frontier-1'), 'tier:restricted:classification', 'CN: no 4E091 model')
  t.equal(explain(policy, geo, { ip: '223.5.5.5', keyId: 'demo-tier1', model: 'llama-3.1-8b', maxTokens: 2000 }).rule, 'tier:restricted:max-output-tokens', 'CN: output over the bound is refused')
  t.equal(explain(policy, geo, { ip: '77.88.8.8', keyId: 'demo-tier1', model: 'llama-3.1-8b', tools: true }).rule, 'tier:restricted:capability:tools', 'RU: no tools')

  // Subdivisions need a City database; the decision itself is checked on a located result.
  const crimea = { ...unknownGeo('2026-01-01T00:00:00.000Z'), country: 'UA', subdivisions: ['UA-43'] }
  const kyiv = { ...unknownGeo('2026-01-01T00:00:00.000Z'), country: 'UA', subdivisions: ['UA-30'] }
  const who = { keyId: 'demo-tier1', org: 'Demo Org', tier: 'allied', verifiedEntity: false }
  const shape = describeRequest('POST', '/v1/chat/completions', { model: 'llama-3.1-8b', messages: [] })
  t.same([decide(shape, crimea, who, policy).status, decide(shape, crimea, who, policy).rule], [451, 'location:embargoed'])
  t.equal(decide(shape, kyiv, who, policy).locationTier, 'standard')
})
