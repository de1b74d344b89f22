import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'

const auditor = { authorization: 'Bearer test-auditor' }

t.test('GET /admin/audit/query: auditors run one SELECT, capped in rows and time', async (t) => {
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))
  })
  const gw = await buildTestGateway(baseConfig(up.url, { audit: { scope: 'all', query: { maxRows: 3, timeoutMs: 200 } } }))
  t.teardown(async () => { await gw.close(); await up.close() })
  for (let i = 0; i < 5; i++) {
    const res = await gw.app.inject({
      method: 'POST', url: '/v1/chat/completions',
      headers: { authorization: 'Bearer test-key-tier1', 'x-request-id': `q-${i}` },
      payload: { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
    })
    t.equal(res.statusCode, 200)
  }
  const q = async (sql: string, extra = ''): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await gw.admin.inject({ method: 'GET', url: `/admin/audit/query?sql=${encodeURIComponent(sql)}${extra}`, headers: auditor })
    return { status: res.statusCode, body: res.json() as Record<string, unknown> }
  }
  const count = await q("SELECT count(*) AS n, sum(tokensIn) AS tin FROM records WHERE kind = 'interaction'")
  t.equal(count.status, 200)
  t.same(count.body.columns, ['n', 'tin'])
  t.same(count.body.rows, [['5', '15']], 'queued records are flushed first; BIGINT as text')
  const many = await q("SELECT requestId FROM records WHERE kind = 'interaction' ORDER BY seq")
  t.equal(many.body.rowCount, 3)
  t.equal(many.body.truncated, true, 'cut at audit.query.maxRows')
  t.same(many.body.rows, [['q-0'], ['q-1'], ['q-2']])
  const two = await q("SELECT requestId FROM records WHERE kind = 'interaction' ORDER BY seq", '&limit=2')
  t.equal(two.body.rowCount, 2)
  const slow = await q('SELECT count(*) FROM range(100000000000)')
  t.equal(slow.status, 400)
  t.match(slow.body, { error: { message: /interrupted after 200 ms/ } })
  for (const bad of ["COPY (SELECT 1) TO '/tmp/geogate-x.csv'", 'SELECT 1; SELECT 2', "SELECT * FROM read_text('/etc/passwd')", 'DROP VIEW records']) {
    const r = await q(bad)
    t.equal(r.status, 400, bad)
  }
  t.equal((await q('SELECT 1', '&limit=0')).status, 400)
  t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/audit/query?sql=SELECT%201' })).statusCode, 401)
})
