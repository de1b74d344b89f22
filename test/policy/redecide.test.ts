/* An auditor holding only the log can re-derive every decision: the policy text is in the chain, the inputs in the records. */
import t from 'tap'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'
import { policyVersions } from '../helpers/ops.js'
import { readRecords } from '../../src/audit/read.js'
import type { InteractionRecord } from '../../src/audit/types.js'
import { recordedVerdict, redecide, snapshotFromPolicyText } from '../../src/policy/redecide.js'
import type { PolicySnapshot } from '../../src/policy/snapshot.js'

const IPS = { US: '8.8.8.8', GB: '81.2.69.142', CU: '152.206.0.1', BR: '200.160.2.3', internal: '127.0.0.1' }
const KEYS = ['test-key-tier1', 'test-key-tier2']
const BODIES: Array<[string, Record<string, unknown>]> = [
  ['/v1/chat/completions', { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }],
  ['/v1/chat/completions', { model: 'frontier-1', messages: [{ role: 'user', content: 'hi' }] }],
  ['/v1/chat/completions', { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f' } }] }],
  ['/v1/chat/completions', { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5000, n: 2 }],
  ['/v1/chat/completions', { model: 'no-such-model', messages: [] }],
  ['/v1/completions', { model: 'llama-3.1-8b', prompt: 'x'.repeat(400) }],
  ['/v1/embeddings', { model: 'llama-3.1-8b', input: 'hi' }]
]

t.test('a decision re-derived from the log\'s own policy text equals the recorded one, for every record of a mixed run', async (t) => {
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  const cfg = baseConfig(up.url, {
    audit: { scope: 'all' },
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat', 'completions', 'embeddings', 'tools', 'streaming'], maxContextTokens: 50 },
      tier2: { models: ['llama-*'], capabilities: ['chat', 'embeddings', 'streaming'], maxOutputTokens: 1024 },
      embargoed: { deny: true }
    }
  })
  const gw = await buildTestGateway(cfg)
  t.teardown(async () => { await gw.close(); await up.close() })

  const send = async (): Promise<number[]> => {
    const statuses: number[] = []
    for (const ip of Object.values(IPS)) {
      for (const key of KEYS) {
        for (const [url, payload] of BODIES) {
          const r = await gw.app.inject({ method: 'POST', url, remoteAddress: ip, headers: { authorization: `Bearer ${key}` }, payload })
          statuses.push(r.statusCode)
        }
      }
    }
    return statuses
  }
  const first = await send()
  // A live change in the middle of the run: a second version, and records decided under it.
  const put = await gw.admin.inject({
    method: 'PUT', url: '/admin/tiers/tier2', headers: { authorization: 'Bearer test-admin' },
    payload: { models: ['*'], capabilities: ['chat', 'completions', 'embeddings', 'tools'], maxOutputTokens: 256, outputTokens: 'reject' }
  })
  t.equal(put.statusCode, 200)
  const second = await send()
  t.ok(new Set([...first, ...second]).size >= 4, `a mix of answers: ${[...new Set([...first, ...second])].sort().join(', ')}`)

  // Everything below reads only the audit directory.
  const versions = new Map<string, PolicySnapshot>()
  for (const v of await policyVersions(gw.rt)) {
    versions.set(v.target, snapshotFromPolicyText((v.after as { policy: string }).policy, v.target))
  }
  t.equal(versions.size, 2, 'two versions in the chain')
  const recs: InteractionRecord[] = []
  for await (const { record } of readRecords(gw.rt.audit.dir, { kind: 'interaction' })) if (record.kind === 'interaction') recs.push(record)
  t.equal(recs.length, first.length + second.length, 'every interaction recorded')
  const rules = new Set<string>()
  let mismatches = 0
  for (const r of recs) {
    const policy = versions.get(r.policyVersion ?? '')
    if (policy === undefined) { t.fail(`record ${r.requestId}: version ${String(r.policyVersion)} not in the chain`); continue }
    const recorded = recordedVerdict(r)
    const again = redecide(r, policy)
    if (recorded === null || again === null) { t.fail(`record ${r.requestId} cannot be re-decided`); continue }
    rules.add(r.rule)
    t.notOk(again.inputs.approximate, 'nothing guessed')
    if (again.decision.rule !== recorded.rule || !again.decision.allow !== recorded.refused) {
      mismatches++
      t.fail(`record ${r.requestId} (${r.country ?? '-'} ${r.keyId ?? '-'} ${r.model ?? '-'}): recorded ${recorded.rule}, re-derived ${again.decision.rule}`)
    }
  }
  t.equal(mismatches, 0, `all ${recs.length} records re-derive to their recorded decision`)
  t.ok(rules.size >= 6, `many rules exercised: ${[...rules].sort().join(', ')}`)
})
