/*
 * The policy on real MMDB lookups: generated GeoIP2-City + Anonymous-IP layers (test/helpers/geo-fixtures.ts) for
 * the places the embedded database cannot show — subdivisions and anonymizers — through the data plane, the audit
 * record and explain.
 */
import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream, sha } from '../helpers/gateway.js'
import { writeTestGeoDbs, type KnownAddress } from '../helpers/geo-fixtures.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

t.test('subdivisions, anonymizers and unknowns decide through the pipeline and are recorded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-policy-geo-'))
  const dbs = await writeTestGeoDbs(dir)
  const at = (label: string): KnownAddress => {
    const k = dbs.known.find((x) => x.label === label)
    if (k === undefined) throw new Error(`no fixture ${label}`)
    return k
  }
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  const gw = await buildTestGateway(baseConfig(up.url, {
    server: { trustedProxies: ['10.0.0.0/8'] },
    geo: { databases: [dbs.city, dbs.anonymousIp] },
    locations: {
      tiers: { embargoed: ['CU', 'IR', 'KP', 'SY', 'UA-43', 'UA-14', 'UA-09'], tier1: ['US', 'GB', 'DE', 'FR', 'NL', 'SE', 'JP', 'UA-30'] },
      default: 'tier2',
      unknown: 'embargoed',
      anonymizers: 'embargoed'
    },
    keys: [
      { id: 'k1', sha256: sha('test-key-tier1'), org: 'Org One', tier: 'tier1', country: 'US' },
      { id: 'kv', sha256: sha('test-key-verified'), org: 'Verified', tier: 'tier1', verifiedEntity: true }
    ],
    audit: { scope: 'all' }
  }))
  t.teardown(async () => { await gw.close(); await up.close(); await rm(dir, { recursive: true, force: true }) })

  const cases: Array<[label: string, key: string, status: number, rule: string, via?: string]> = [
    ['us-california', 'test-key-tier1', 200, 'allow'],
    ['crimea', 'test-key-tier1', 451, 'location:embargoed'],
    ['donetsk', 'test-key-tier1', 451, 'location:embargoed'],
    ['luhansk', 'test-key-verified', 451, 'location:embargoed'],
    ['kyiv', 'test-key-tier1', 200, 'allow'],
    ['cuba', 'test-key-tier1', 451, 'location:embargoed'],
    ['tor-germany', 'test-key-tier1', 451, 'anonymizer:tor'],
    ['vpn-netherlands', 'test-key-tier1', 451, 'anonymizer:vpn'],
    ['vpn-netherlands', 'test-key-verified', 200, 'allow'],
    ['public-proxy-sweden', 'test-key-tier1', 451, 'anonymizer:public-proxy'],
    ['residential-proxy-japan', 'test-key-tier1', 451, 'anonymizer:residential-proxy'],
    ['hosting-us', 'test-key-tier1', 200, 'allow'],
    ['vpn-unknown-place', 'test-key-tier1', 451, 'anonymizer:vpn'],
    ['vpn-unknown-place', 'test-key-verified', 451, 'location:unknown'],
    ['unknown-v4', 'test-key-tier1', 451, 'location:unknown'],
    ['v6-crimea', 'test-key-tier1', 451, 'location:embargoed'],
    ['v6-tor-germany', 'test-key-tier1', 451, 'anonymizer:tor'],
    ['v6-us-california', 'test-key-tier1', 200, 'allow'],
    ['crimea', 'test-key-tier1', 451, 'location:embargoed', 'xff-mapped'],
    ['us-california', 'test-key-tier1', 200, 'allow', 'xff']
  ]
  const rules: string[] = []
  gw.app.addHook('onSend', async (request) => { rules.push(request.ctx.decision?.rule ?? 'none') })
  for (const [label, key, status, rule, via] of cases) {
    const k = at(label)
    rules.length = 0
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      remoteAddress: via === undefined ? k.ip : '10.0.0.1',
      headers: { authorization: `Bearer ${key}`, ...(via === undefined ? {} : { 'x-forwarded-for': via === 'xff-mapped' ? `::ffff:${k.ip}` : k.ip }) },
      payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
    })
    t.equal(res.statusCode, status, `${label} ${key} ${via ?? ''}: status`)
    t.equal(rules[0], rule, `${label} ${key} ${via ?? ''}: rule`)
  }
  t.equal(up.requests.length, cases.filter((c) => c[2] === 200).length, 'only permitted requests reached the backend')

  // the audit record carries the rule, the subdivision and the database build
  const audit = await gw.admin.inject({ method: 'GET', url: '/admin/audit?format=jsonl', headers: { authorization: 'Bearer test-auditor' } })
  t.equal(audit.statusCode, 200)
  const records = audit.body.trim().split('\n').map((l) => JSON.parse(l) as { ip: string, rule: string, subdivision: string | null, geodbBuild: string | null, decision: string })
  const crimea = records.find((r) => r.ip === at('crimea').ip)
  t.equal(crimea?.rule, 'location:embargoed')
  t.equal(crimea?.subdivision, 'UA-43')
  t.equal(crimea?.decision, 'deny')
  t.equal(crimea?.geodbBuild, dbs.buildEpoch.toISOString())
  t.equal(records.find((r) => r.ip === at('tor-germany').ip)?.rule, 'anonymizer:tor')

  // explain shows both layers with their build dates, and where the tier came from
  const ex = await gw.admin.inject({ method: 'GET', url: `/admin/explain?ip=${at('crimea').ip}&keyId=k1&model=llama-3.1-8b`, headers: { authorization: 'Bearer test-auditor' } })
  const trace = ex.json()
  t.same(trace.location.subdivisions, ['UA-43'])
  t.equal(trace.location.source, 'subdivision:UA-43')
  t.same(trace.geo.databases.map((d: { path: string }) => d.path), [dbs.city, dbs.anonymousIp])
  t.same(trace.geo.databases.map((d: { databaseType: string }) => d.databaseType), ['GeoIP2-City', 'GeoIP2-Anonymous-IP'])
  t.equal(trace.geo.build, dbs.buildEpoch.toISOString())
  const tor = (await gw.admin.inject({ method: 'GET', url: `/admin/explain?ip=${at('v6-tor-germany').ip}&keyId=k1&model=llama-3.1-8b`, headers: { authorization: 'Bearer test-admin' } })).json()
  t.same([tor.location.country, tor.location.anonymizer.tor, tor.location.source, tor.rule], ['DE', true, 'anonymizer:tor', 'anonymizer:tor'])
})
