/* Admin changes are unambiguous: PATCH merges, PUT replaces and refuses to drop limits silently. */
import t from 'tap'
import { baseConfig, buildTestGateway } from '../helpers/gateway.js'

const ADMIN = { authorization: 'Bearer test-admin' }

const limited = (): Record<string, unknown> => {
  const c = baseConfig()
  ;(c.tiers as Record<string, Record<string, unknown>>).tier2 = {
    models: ['llama-*'], capabilities: ['chat', 'streaming'], maxOutputTokens: 1024,
    limits: { requestsPerMinute: 60, tokensPerMinute: 20000, concurrency: 4 }
  }
  return c
}

t.test('PUT that leaves out the limits is refused with what it would drop; nothing changes', async (t) => {
  const gw = await buildTestGateway(limited())
  t.teardown(gw.close)
  const before = gw.rt.config.tiers.tier2
  // The README's old example: a PUT carrying only what the operator meant to change.
  const res = await gw.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', headers: ADMIN, payload: { models: ['llama-*'], maxOutputTokens: 1024, limits: { requestsPerMinute: 30 } } })
  t.equal(res.statusCode, 400)
  t.same((res.json().error as { issues: Array<{ path: string, message: string }> }).issues.map((i) => `${i.path}: ${i.message}`), [
    '/tiers/tier2/limits/tokensPerMinute: PUT replaces the whole tier, and this body leaves out "limits.tokensPerMinute" (now 20000): send it as null to drop it, or PATCH to change only the fields you send',
    '/tiers/tier2/limits/concurrency: PUT replaces the whole tier, and this body leaves out "limits.concurrency" (now 4): send it as null to drop it, or PATCH to change only the fields you send'
  ], 'tokensPerMinute and concurrency would be lost: refused, each named')
  t.same(gw.rt.config.tiers.tier2, before, 'nothing changed')

  const gw2 = await buildTestGateway(limited())
  t.teardown(gw2.close)
  const bad = await gw2.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', headers: ADMIN, payload: { models: ['llama-*'], capabilities: ['chat', 'embedding'] } })
  t.equal(bad.statusCode, 400)
  const err = bad.json().error as { code: string, issues: Array<{ path: string, message: string }> }
  t.equal(err.code, 'invalid_policy')
  t.same(err.issues.map((i) => `${i.path}: ${i.message}`), [
    '/tiers/tier2/limits: PUT replaces the whole tier, and this body leaves out "limits" (now {"requestsPerMinute":60,"tokensPerMinute":20000,"concurrency":4}): send it as null to drop it, or PATCH to change only the fields you send',
    '/tiers/tier2/maxOutputTokens: PUT replaces the whole tier, and this body leaves out "maxOutputTokens" (now 1024): send it as null to drop it, or PATCH to change only the fields you send',
    '/tiers/tier2/capabilities/1: "embedding" is not allowed; allowed: chat, completions, embeddings, images, audio, fine-tuning, tools, streaming'
  ], 'every error, the enum one with the same text as check-config')
  t.same(gw2.rt.config.tiers.tier2, before, 'nothing changed')

  const partial = await gw2.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', headers: ADMIN, payload: { models: ['*'], maxOutputTokens: 512, limits: { requestsPerMinute: 30, tokensPerMinute: null, concurrency: null } } })
  t.equal(partial.statusCode, 200, 'each dropped limit named as null: accepted')
  t.same(gw2.rt.config.tiers.tier2?.limits, { requestsPerMinute: 30 })
  t.same(gw2.rt.config.tiers.tier2?.capabilities, [], 'PUT replaced the rest')
  const explicit = await gw2.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', headers: ADMIN, payload: { models: ['llama-*'], capabilities: ['chat'], limits: null, maxOutputTokens: null } })
  t.equal(explicit.statusCode, 200, 'null says "drop it" explicitly')
  t.equal(gw2.rt.config.tiers.tier2?.limits, undefined)
  t.equal(gw2.rt.config.tiers.tier2?.maxOutputTokens, undefined)
})

t.test('PATCH merges: one limit changes, the others stay; null removes; merge-patch+json accepted', async (t) => {
  const gw = await buildTestGateway(limited())
  t.teardown(gw.close)
  const res = await gw.admin.inject({ method: 'PATCH', url: '/admin/tiers/tier2', headers: ADMIN, payload: { limits: { requestsPerMinute: 30 } } })
  t.equal(res.statusCode, 200)
  t.same(res.json().limits, { requestsPerMinute: 30, tokensPerMinute: 20000, concurrency: 4 }, 'tokensPerMinute and concurrency kept')
  t.same(gw.rt.config.tiers.tier2?.models, ['llama-*'])
  const rm = await gw.admin.inject({
    method: 'PATCH', url: '/admin/tiers/tier2', headers: { ...ADMIN, 'content-type': 'application/merge-patch+json' },
    payload: JSON.stringify({ limits: { concurrency: null }, maxOutputTokens: null })
  })
  t.equal(rm.statusCode, 200, rm.body)
  t.same(gw.rt.config.tiers.tier2?.limits, { requestsPerMinute: 30, tokensPerMinute: 20000 })
  t.equal(gw.rt.config.tiers.tier2?.maxOutputTokens, undefined)
  const bad = await gw.admin.inject({ method: 'PATCH', url: '/admin/tiers/tier2', headers: ADMIN, payload: { failMode: 'sideways' } })
  t.equal(bad.statusCode, 400)
  t.same((bad.json().error as { issues: Array<{ path: string, message: string }> }).issues, [{ path: '/tiers/tier2/failMode', message: '"sideways" is not allowed; allowed: open, closed', value: 'sideways', allowed: ['open', 'closed'] }])
  const loc = await gw.admin.inject({ method: 'PATCH', url: '/admin/locations', headers: ADMIN, payload: { default: 'tier1' } })
  t.equal(loc.statusCode, 200)
  t.equal(gw.rt.config.locations.default, 'tier1')
  t.same(gw.rt.config.locations.tiers.tier1, ['US', 'GB', 'DE'], 'the rest of the mapping kept')
  const notObject = await gw.admin.inject({ method: 'PATCH', url: '/admin/tiers/tier2', headers: ADMIN, payload: [1, 2] })
  t.equal(notObject.statusCode, 400, 'the body schema refuses a non-object')
})
