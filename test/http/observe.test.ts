/*
 * The cross-border metric and the audit log follow one rule (policy/cross-border.ts). They used to disagree: the
 * metric did not count anonymised callers in the serving country, nor requests whose serving region is unknown,
 * which the audit log records as crossing.
 */
import t from 'tap'
import { Metrics } from '../../src/infra/metrics.js'
import { parseConfig } from '../../src/config/load.js'
import { snapshotFromConfig } from '../../src/policy/snapshot.js'
import { isCrossBorder } from '../../src/policy/cross-border.js'
import { observeRequest } from '../../src/http/observe.js'
import { newContext } from '../../src/http/context.js'
import { NO_ANONYMIZER, type GeoResult } from '../../src/geo/types.js'
import { baseConfig } from '../helpers/gateway.js'

const config = parseConfig(baseConfig('http://127.0.0.1:9', {
  models: { 'llama-3.1-8b': { backend: 'gpu', classification: 'EAR99' } }
}))
const policy = snapshotFromConfig(config)

function geo (country: string | null, vpn = false): GeoResult {
  return {
    country, subdivisions: [], registeredCountry: country, representedCountry: null,
    anonymizer: vpn ? { ...NO_ANONYMIZER, vpn: true, any: true } : NO_ANONYMIZER, build: null
  }
}

async function crossBorderCount (m: Metrics): Promise<number> {
  const v = await m.crossBorder.get()
  return v.values.reduce((n, s) => n + s.value, 0)
}

const cases: Array<{ name: string, geo: GeoResult, model: string, backend: { name: string, region: string } | null, crossing: boolean }> = [
  { name: 'a caller in the serving country', geo: geo('US'), model: 'llama-3.1-8b', backend: { name: 'gpu', region: 'US' }, crossing: false },
  { name: 'a caller in another country', geo: geo('DE'), model: 'llama-3.1-8b', backend: { name: 'gpu', region: 'US' }, crossing: true },
  { name: 'an anonymised caller in the serving country', geo: geo('US', true), model: 'llama-3.1-8b', backend: { name: 'gpu', region: 'US' }, crossing: true },
  { name: 'an unknown caller location', geo: geo(null), model: 'llama-3.1-8b', backend: { name: 'gpu', region: 'US' }, crossing: true },
  { name: 'a model no backend serves (unknown serving region)', geo: geo('US'), model: 'not-configured', backend: null, crossing: true }
]

for (const c of cases) {
  t.test(`${c.name}: the metric counts it exactly when the audit rule calls it crossing`, async (t) => {
    const m = new Metrics()
    const ctx = newContext('192.0.2.1', policy, config)
    ctx.geo = c.geo
    ctx.principal = { keyId: 'k1', org: 'Org One', tier: 'tier1', verifiedEntity: false }
    ctx.shape = { endpoint: 'chat.completions', forwardPath: '/v1/chat/completions', model: c.model, capabilities: ['chat'], maxOutputTokens: null, choices: 1, promptTokens: 1, stream: false }
    ctx.decision = { allow: true, rule: 'allow', status: 200, message: '', locationTier: 'tier1', keyTier: 'tier1', shadow: false }
    ctx.backend = c.backend
    observeRequest(m, ctx, 200, policy, config.backends)
    const region = c.backend?.region ?? null
    t.equal(isCrossBorder(c.geo.country, c.geo.anonymizer.any, region), c.crossing, 'the audit rule')
    t.equal(await crossBorderCount(m), c.crossing ? 1 : 0, 'the metric')
  })
}
