/* POST /admin/policy/test, POST /admin/policy/replay, GET /admin/policy/versions. */
import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'

const AUDITOR = { authorization: 'Bearer test-auditor' }
const ADMIN = { authorization: 'Bearer test-admin' }
const chat = { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }

t.test('policy as code on the admin plane', async (t) => {
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  const cfg = baseConfig(up.url, { audit: { scope: 'all' } })
  const gw = await buildTestGateway(cfg)
  t.teardown(async () => { await gw.close(); await up.close() })

  t.test('POST /admin/policy/test: an auditor runs expectations against the live policy', async (t) => {
    const res = await gw.admin.inject({
      method: 'POST', url: '/admin/policy/test', headers: AUDITOR, payload: {
        tests: [
          { who: { country: 'CU', key: 'k1' }, what: { model: 'llama-3.1-8b' }, expect: { status: 451, rule: 'location:embargoed' } },
          { name: 'wrong on purpose', who: { country: 'BR', key: 'k2' }, what: { model: 'frontier-1' }, expect: { status: 200 } }
        ]
      }
    })
    t.equal(res.statusCode, 200)
    const body = res.json() as { ok: boolean, passed: number, failed: number, results: Array<{ id: string, name: string, ok: boolean, diffs: string[][] }> }
    t.match(body, { ok: false, passed: 1, failed: 1 })
    t.match(body.results[1], { id: '#2', name: 'wrong on purpose', ok: false, diffs: [['status', '200', '403']] })
    const bad = await gw.admin.inject({ method: 'POST', url: '/admin/policy/test', headers: AUDITOR, payload: { tests: [{ who: {}, what: {}, expect: { status: '200' } }] } })
    t.equal(bad.statusCode, 400)
    t.match(bad.json(), { error: { message: /\/tests\/0\/expect\/status/ } })
    const put = await gw.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', headers: AUDITOR, payload: { models: ['*'] } })
    t.equal(put.statusCode, 403, 'an auditor still changes nothing')
  })

  t.test('GET /admin/policy/versions lists what the chain holds; a change adds one', async (t) => {
    const first = (await gw.admin.inject({ method: 'GET', url: '/admin/policy/versions', headers: AUDITOR })).json() as { current: string, versions: Array<{ version: string, cause: string }> }
    t.match(first.versions, [{ version: first.current, cause: 'start' }])
    const put = await gw.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', headers: ADMIN, payload: { models: ['*'], capabilities: ['chat'] } })
    t.equal(put.statusCode, 200)
    const second = (await gw.admin.inject({ method: 'GET', url: '/admin/policy/versions', headers: AUDITOR })).json() as { current: string, versions: Array<{ version: string, cause: string, previous: string | null }> }
    t.not(second.current, first.current)
    t.match(second.versions, [{ version: first.current, cause: 'start' }, { version: second.current, cause: 'override', previous: first.current }])
    const one = await gw.admin.inject({ method: 'GET', url: `/admin/policy/versions/${second.current}`, headers: AUDITOR })
    t.equal(one.statusCode, 200)
    t.match(one.json(), { version: second.current, policy: { tiers: { tier2: { models: ['*'], capabilities: ['chat'] } } } })
    t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/policy/versions/p-0000', headers: AUDITOR })).statusCode, 404)
  })

  t.test('POST /admin/policy/replay streams what a candidate would flip', async (t) => {
    let br = 0
    for (const ip of ['8.8.8.8', '200.160.2.3', '200.160.2.3', '152.206.0.1']) {
      const r = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: ip, headers: { authorization: 'Bearer test-key-tier1' }, payload: chat })
      if (ip === '200.160.2.3' && r.statusCode === 200) br++
    }
    t.equal(br, 2)
    const locations = cfg.locations as { tiers: Record<string, string[]> }
    const candidate = { ...cfg, locations: { ...locations, tiers: { ...locations.tiers, embargoed: [...(locations.tiers.embargoed ?? []), 'BR'] } } }
    const res = await gw.admin.inject({ method: 'POST', url: '/admin/policy/replay', headers: AUDITOR, payload: { config: candidate } })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /application\/x-ndjson/)
    const lines = res.body.trim().split('\n').map((l) => JSON.parse(l) as { report?: { newlyRefused: number, newlyAllowed: number, rows: Array<{ country: string }> } })
    const rep = lines[lines.length - 1]?.report
    t.equal(rep?.newlyRefused, br, 'the BR interactions that were allowed')
    t.equal(rep?.newlyAllowed, 0)
    t.ok(rep?.rows.every((r) => r.country === 'BR'))
    const yaml = `server: { trustedProxies: [] }\nbackends: { gpu: { url: "http://127.0.0.1:9", region: US } }\nlocations: { default: t, unknown: t }\ntiers: { t: { deny: true } }\n`
    const csv = await gw.admin.inject({ method: 'POST', url: '/admin/policy/replay', headers: AUDITOR, payload: { config: yaml, format: 'csv' } })
    t.equal(csv.statusCode, 200)
    t.match(csv.body, /^change,country,model,org,rule,interactions,approximate\r\nnewly-refused,/, 'a YAML candidate that refuses everything')
    const invalid = await gw.admin.inject({ method: 'POST', url: '/admin/policy/replay', headers: AUDITOR, payload: { config: { locations: {} } } })
    t.equal(invalid.statusCode, 400)
    t.ok(Array.isArray((invalid.json() as { error: { issues?: unknown[] } }).error.issues), 'every issue of the candidate')
  })
})
