import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'
import { signingKeyPem } from '../helpers/audit.js'

const auditor = { authorization: 'Bearer test-auditor' }
const admin = { authorization: 'Bearer test-admin' }

t.test('admin API: audit query/export, verify, public key and usage reports (admin and auditor, read-only)', async (t) => {
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))
  })
  const pem = signingKeyPem()
  const gw = await buildTestGateway(baseConfig(up.url, { audit: { scope: 'all', signingKey: pem } }))
  t.teardown(async () => { await gw.close(); await up.close() })
  for (let i = 0; i < 4; i++) {
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { authorization: `Bearer ${i % 2 === 0 ? 'test-key-tier1' : 'test-key-tier2'}`, 'x-request-id': `adm-${i}` },
      payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
    })
    t.equal(res.statusCode, 200)
  }

  t.test('no token, 401; both roles may read', async (t) => {
    t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/audit' })).statusCode, 401)
    t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/audit', headers: { authorization: 'Bearer wrong' } })).statusCode, 401)
    for (const h of [auditor, admin]) t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/audit', headers: h })).statusCode, 200)
  })

  t.test('GET /admin/audit streams JSONL, filtered', async (t) => {
    const res = await gw.admin.inject({ method: 'GET', url: '/admin/audit', headers: auditor })
    t.match(res.headers['content-type'], /ndjson/)
    const lines = res.body.trim().split('\n').map((l) => JSON.parse(l) as { requestId?: string, action?: string, keyId: string, hash: string })
    t.same(lines.map((l) => l.requestId ?? l.action), ['policy.version', 'adm-0', 'adm-1', 'adm-2', 'adm-3'],
      'the policy version in force at start, then the queued records, flushed before the export')
    const k2 = await gw.admin.inject({ method: 'GET', url: '/admin/audit?keyId=k2&decision=allow', headers: auditor })
    t.same(k2.body.trim().split('\n').map((l) => (JSON.parse(l) as { requestId: string }).requestId), ['adm-1', 'adm-3'])
    const none = await gw.admin.inject({ method: 'GET', url: '/admin/audit?country=CU', headers: auditor })
    t.equal(none.body, '')
    const future = await gw.admin.inject({ method: 'GET', url: '/admin/audit?from=2999-01-01', headers: auditor })
    t.equal(future.body, '')
    t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/audit?from=yesterday', headers: auditor })).statusCode, 400)
    t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/audit?decision=maybe', headers: auditor })).statusCode, 400)
  })

  t.test('GET /admin/audit?format=csv', async (t) => {
    const res = await gw.admin.inject({ method: 'GET', url: '/admin/audit?format=csv', headers: auditor })
    t.match(res.headers['content-type'], /text\/csv/)
    const rows = res.body.trim().split('\r\n')
    t.match(rows[0], /^kind,ts,requestId,keyId,org,ip,country,subdivision,anonymizer,geodbBuild,model,classification,servingRegion,endpoint,crossBorder,decision,rule,status,tokensIn,tokensOut,latencyMs/)
    t.equal(rows.length, 6, 'header, the policy version record, 4 interactions')
    t.match(rows[0], /,stream,policyVersion,capabilities,keyCountry,maxOutputTokens,n,choices,actor,/)
    t.match(rows[2], /,p-[0-9a-f]{16},chat,/, 'an interaction with the version that decided it')
  })

  t.test('GET /admin/audit/verify', async (t) => {
    const res = await gw.admin.inject({ method: 'GET', url: '/admin/audit/verify', headers: auditor })
    t.equal(res.statusCode, 200)
    const body = res.json() as { ok: boolean, records: number }
    t.equal(body.ok, true)
    t.equal(body.records, 5, '4 interactions and the policy version record')
  })

  t.test('GET /admin/audit/public-key is the key the digests are signed with', async (t) => {
    const res = await gw.admin.inject({ method: 'GET', url: '/admin/audit/public-key', headers: auditor })
    t.equal(res.statusCode, 200)
    t.match(res.body, /^-----BEGIN PUBLIC KEY-----/)
    const { createPublicKey, createPrivateKey } = await import('node:crypto')
    t.equal(res.body, createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' }).toString())
  })

  t.test('GET /admin/reports/usage in JSON, CSV and HTML', async (t) => {
    const period = new Date().toISOString().slice(0, 7)
    const json = await gw.admin.inject({ method: 'GET', url: `/admin/reports/usage?period=${period}`, headers: auditor })
    t.equal(json.statusCode, 200)
    const r = json.json() as { totals: { interactions: number, tokensIn: number, tokensOut: number }, rows: Array<{ tier: string, model: string }> }
    t.equal(r.totals.interactions, 4)
    t.equal(r.totals.tokensOut, 8, 'tokens from the backend usage')
    t.same(r.rows.map((x) => x.tier).sort(), ['tier1', 'tier2'])
    const csv = await gw.admin.inject({ method: 'GET', url: `/admin/reports/usage?period=${period}&format=csv`, headers: auditor })
    t.match(csv.body, /^period,country,locationTier,model,tier,interactions/)
    const html = await gw.admin.inject({ method: 'GET', url: `/admin/reports/usage?period=${period}&format=html`, headers: auditor })
    t.match(html.headers['content-type'], /text\/html/)
    t.match(html.body, /<svg/)
    t.notMatch(html.body, /<script|src="http|href="http/, 'self-contained: no scripts, no external assets')
    t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/reports/usage?period=2026-13', headers: auditor })).statusCode, 400)
  })

  t.test('nothing in the audit API changes anything', async (t) => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'] as const) {
      for (const url of ['/admin/audit', '/admin/audit/verify', '/admin/reports/usage']) {
        const res = await gw.admin.inject({ method, url, headers: admin })
        t.ok(res.statusCode === 404 || res.statusCode === 405, `${method} ${url} → ${res.statusCode}`)
      }
    }
  })
})
