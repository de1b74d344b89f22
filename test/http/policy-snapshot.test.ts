import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'
import { waitFor } from '../helpers/ops.js'
import { readRecords } from '../../src/audit/read.js'
import { reloadConfig } from '../../src/reload.js'
import type { InteractionRecord } from '../../src/audit/types.js'

/*
 * One request is judged by one policy: the snapshot taken when it arrives. A reload landing while the request
 * waits at a slow backend must not leak into its audit record or its metrics; the next request sees the new policy.
 */

const chat = { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }
const headers = { authorization: 'Bearer test-key-tier1', 'x-request-id': '' }

t.test('a reload mid-request leaves the record agreeing with the decision', async (t) => {
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const up = await startUpstream((_req, res) => {
    void held.then(() => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } }))
    })
  })
  const before = baseConfig(up.url, { audit: { scope: 'all' } })
  const gw = await buildTestGateway(before)
  t.teardown(async () => { release(); await gw.close(); await up.close() })

  // The file the reload reads: the model is reclassified and tier1 may no longer use it.
  const after = structuredClone(before) as { models: Record<string, Record<string, unknown>>, tiers: Record<string, Record<string, unknown>>, audit: Record<string, unknown> }
  const llama = after.models['llama-3.1-8b']
  const tier1 = after.tiers.tier1
  if (llama === undefined || tier1 === undefined) throw new Error('baseConfig changed shape')
  llama.classification = '5D002'
  tier1.models = ['frontier-*']
  after.audit = { dir: join(gw.dir, 'audit'), scope: 'all' }
  const file = join(gw.dir, 'after.json')
  await writeFile(file, JSON.stringify(after))

  const inFlight = gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { ...headers, 'x-request-id': 'slow-1' }, payload: chat })
  await waitFor(() => up.requests.length === 1, 5000, 'the request to reach the backend')
  const versionBefore = gw.rt.policy.snapshot().version
  const reloaded = await reloadConfig(gw.rt, file, {})
  t.ok(reloaded.ok, 'the reload applied')
  t.ok(gw.rt.policy.snapshot().version > versionBefore, 'a new snapshot is in force while the request is still at the backend')
  release()
  const res = await inFlight
  t.equal(res.statusCode, 200, 'the request admitted under the old policy completes')

  const next = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { ...headers, 'x-request-id': 'next-1' }, payload: chat })
  t.equal(next.statusCode, 403, 'the next request is judged by the new policy')

  await gw.rt.audit.flush()
  const records = new Map<string, InteractionRecord>()
  for await (const { record } of readRecords(gw.rt.audit.dir, { kind: 'interaction' })) {
    if (record.kind === 'interaction') records.set(record.requestId, record)
  }
  const slow = records.get('slow-1')
  t.match(slow, { decision: 'allow', status: 200, classification: 'EAR99', model: 'llama-3.1-8b', keyTier: 'tier1', tokensIn: 3, tokensOut: 4 },
    'the record of the slow request says what its decision was made on: the old classification, allowed')
  t.match(records.get('next-1'), { decision: 'deny', status: 403, classification: '5D002' }, 'the next record carries the new policy')

  const metrics = await gw.rt.metrics.registry.getSingleMetricAsString('geogate_requests_total')
  t.match(metrics, /decision="allow"[^\n]*status="200"[^\n]* 1\n/, 'the metrics count the slow request as the allow it was')
})
