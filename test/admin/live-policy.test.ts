import t from 'tap'
import pino from 'pino'
import { Redis } from 'ioredis'
import { buildTestGateway, baseConfig, startUpstream, type TestGateway } from '../helpers/gateway.js'
import { testRedis, uniquePrefix, deletePrefix, adminChanges, waitFor } from '../helpers/ops.js'
import { parseConfig } from '../../src/config/load.js'
import { LivePolicy } from '../../src/policy/live.js'
import { createRedis } from '../../src/infra/redis.js'

const ADMIN = { authorization: 'Bearer test-admin' }
const chat = { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }

t.test('two replicas sharing Redis', async (t) => {
  const redis = await testRedis()
  const prefix = uniquePrefix('live')
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  const cfg = baseConfig(up.url, { redis: { url: redis.url, keyPrefix: prefix } })
  const a = await buildTestGateway(cfg)
  const b = await buildTestGateway(cfg)
  t.teardown(async () => {
    await a.close(); await b.close(); await up.close()
    await deletePrefix(redis.url, prefix)
    await redis.stop()
  })
  const callWith = async (gw: TestGateway, key: string): Promise<number> =>
    (await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { authorization: `Bearer ${key}` }, payload: chat })).statusCode

  t.test('a key created on A works on B within a second; revoked, it stops within a second', async (t) => {
    const created = await a.admin.inject({ method: 'POST', url: '/admin/keys', headers: ADMIN, payload: { org: 'New Org', tier: 'tier1', country: 'US' } })
    t.equal(created.statusCode, 201)
    const { id, key } = created.json() as { id: string, key: string }
    t.match(key, /^gg-[A-Za-z0-9_-]{43}$/, 'a 256-bit raw key')
    t.equal(await callWith(a, key), 200, 'works at once where it was made')
    const took = await waitFor(async () => await callWith(b, key) === 200, 1000, 'the new key on replica B')
    t.ok(took < 1000, `replica B accepted it after ${took} ms`)

    const list = await b.admin.inject({ method: 'GET', url: '/admin/keys', headers: ADMIN })
    const listed = (list.json() as { keys: Array<Record<string, unknown>> }).keys.find((k) => k.id === id)
    t.match(listed, { id, org: 'New Org', tier: 'tier1', country: 'US', source: 'admin' })
    t.notOk(list.body.includes(key), 'the raw key is never listed')
    t.notOk(JSON.stringify(listed).includes('sha256'), 'nor its hash')

    const del = await a.admin.inject({ method: 'DELETE', url: `/admin/keys/${id}`, headers: ADMIN })
    t.equal(del.statusCode, 200)
    t.equal(await callWith(a, key), 401)
    const gone = await waitFor(async () => await callWith(b, key) === 401, 1000, 'the revoked key refused on B')
    t.ok(gone < 1000, `replica B refused it after ${gone} ms`)

    const changes = await adminChanges(a.rt)
    const change = changes.find((c) => c.action === 'key.create')
    t.match(change, { kind: 'admin', actor: 'admin', role: 'admin', target: id, before: null, after: { id, tier: 'tier1' } }, 'the change is audited: who, what, before, after')
    t.notOk(JSON.stringify(changes).includes(key), 'the raw key never reaches the audit log')
    t.ok(changes.some((c) => c.action === 'key.revoke' && c.target === id && c.after === null))
  })

  t.test('a file key revoked on B stops on A; rotation on A gives a new key that works on B', async (t) => {
    t.equal(await callWith(a, 'test-key-tier2'), 200)
    const rot = await a.admin.inject({ method: 'POST', url: '/admin/keys/k2/rotate', headers: ADMIN })
    t.equal(rot.statusCode, 200)
    const { key } = rot.json() as { key: string }
    t.equal(await callWith(a, 'test-key-tier2'), 401, 'the old key stops at once')
    await waitFor(async () => await callWith(b, key) === 200 && await callWith(b, 'test-key-tier2') === 401, 1000, 'the rotation on B')
    const rev = await b.admin.inject({ method: 'DELETE', url: '/admin/keys/k1', headers: ADMIN })
    t.equal(rev.statusCode, 200)
    await waitFor(async () => await callWith(a, 'test-key-tier1') === 401, 1000, 'the revocation on A')
    t.equal((await a.admin.inject({ method: 'DELETE', url: '/admin/keys/k1', headers: ADMIN })).statusCode, 404, 'already revoked')
  })

  t.test('a tier change on A applies on B; an invalid one is refused with every error and changes nothing', async (t) => {
    const before = (await b.admin.inject({ method: 'GET', url: '/admin/tiers/tier2', headers: ADMIN })).json()
    const bad = await a.admin.inject({
      method: 'PUT',
      url: '/admin/tiers/tier2',
      headers: ADMIN,
      payload: { models: ['llama-*'], capabilities: ['chat', 'teleport'], limits: { requestsPerMinute: -5 }, failMode: 'sideways' }
    })
    t.equal(bad.statusCode, 400)
    const err = bad.json().error as { code: string, issues: Array<{ path: string }> }
    t.equal(err.code, 'invalid_policy')
    const paths = err.issues.map((i) => i.path)
    t.ok(paths.includes('/tiers/tier2/capabilities/1'), 'bad capability listed')
    t.ok(paths.includes('/tiers/tier2/limits/requestsPerMinute'), 'bad limit listed')
    t.ok(paths.includes('/tiers/tier2/failMode'), 'bad fail mode listed')
    t.same((await a.admin.inject({ method: 'GET', url: '/admin/tiers/tier2', headers: ADMIN })).json(), before, 'running policy kept')

    const good = await a.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', headers: ADMIN, payload: { models: ['*'], capabilities: ['chat'], failMode: 'open', limits: { requestsPerMinute: 5 }, maxOutputTokens: null } })
    t.equal(good.statusCode, 200)
    t.match(good.json(), { models: ['*'], failMode: 'open', deny: false, outputTokens: 'clamp' }, 'schema defaults applied')
    await waitFor(async () => {
      const r = await b.admin.inject({ method: 'GET', url: '/admin/tiers/tier2', headers: ADMIN })
      return (r.json() as { failMode: string }).failMode === 'open' && r.headers['x-geogate-source'] === 'override'
    }, 1000, 'the tier on B')
    t.equal(b.rt.policy.snapshot().tiers.get('tier2')?.limits?.requestsPerMinute, 5, 'the pipeline reads it from the snapshot')
    t.match((await adminChanges(a.rt)).find((c) => c.action === 'tier.put'), { target: 'tier2', before: { models: ['llama-*'] }, after: { models: ['*'] } })

    const reset = await b.admin.inject({ method: 'DELETE', url: '/admin/tiers/tier2', headers: ADMIN })
    t.equal(reset.statusCode, 200)
    await waitFor(() => a.rt.config.tiers.tier2?.failMode === 'closed', 1000, 'the reset on A')
  })

  t.test('locations: a mapping moved on A applies on B; a reference to an unknown tier is refused', async (t) => {
    const loc = (await a.admin.inject({ method: 'GET', url: '/admin/locations', headers: ADMIN })).json() as { tiers: Record<string, string[]>, default: string, unknown: string }
    const bad = await a.admin.inject({ method: 'PUT', url: '/admin/locations', headers: ADMIN, payload: { ...loc, default: 'nope', tiers: { ...loc.tiers, tier1: ['US', 'usa'] } } })
    t.equal(bad.statusCode, 400)
    const paths = (bad.json().error.issues as Array<{ path: string }>).map((i) => i.path)
    t.ok(paths.includes('/locations/default') && paths.includes('/locations/tiers/tier1/1'), 'every error listed')
    const moved = { ...loc, tiers: { ...loc.tiers, tier1: ['GB'], embargoed: [...(loc.tiers.embargoed ?? []), 'US'] } }
    t.equal((await a.admin.inject({ method: 'PUT', url: '/admin/locations', headers: ADMIN, payload: moved })).statusCode, 200)
    await waitFor(() => b.rt.policy.snapshot().locations.tiers.embargoed?.includes('US') === true, 1000, 'locations on B')
    t.equal((await b.admin.inject({ method: 'DELETE', url: '/admin/locations', headers: ADMIN })).statusCode, 200)
    await waitFor(() => a.rt.policy.snapshot().locations.tiers.tier1?.includes('US') === true, 1000, 'the reset on A')
  })

  t.test('creating an id that exists is a conflict; unknown fields are refused', async (t) => {
    const dup = await a.admin.inject({ method: 'POST', url: '/admin/keys', headers: ADMIN, payload: { org: 'x', tier: 'tier1', id: 'k2' } })
    t.equal(dup.statusCode, 409)
    const odd = await a.admin.inject({ method: 'POST', url: '/admin/keys', headers: ADMIN, payload: { org: 'x', tier: 'gold', sha256: 'a'.repeat(64), country: 'Germany' } })
    t.equal(odd.statusCode, 400)
    const paths = (odd.json().error.issues as Array<{ path: string }>).map((i) => i.path)
    t.ok(paths.includes('/sha256'), 'a caller cannot choose the hash')
  })
})

t.test('a missed pub/sub message is healed by the version poll', async (t) => {
  const redis = await testRedis()
  const prefix = uniquePrefix('poll')
  const config = parseConfig(baseConfig('http://127.0.0.1:9', { redis: { url: redis.url, keyPrefix: prefix } }))
  const client = await createRedis(config.redis, pino({ level: 'silent' }))
  const raw = new Redis(redis.url)
  t.teardown(async () => { client?.disconnect(); raw.disconnect(); await deletePrefix(redis.url, prefix); await redis.stop() })
  if (client === null) throw new Error('redis configured')
  const live = await LivePolicy.open(config, client, pino({ level: 'silent' }), { pollMs: 100 })
  t.teardown(async () => { await live.close() })
  // Written the way a replica would, but with no PUBLISH: only the poll can notice.
  await raw.hset(`${prefix}{policy}:overrides`, 'tier:tier2', JSON.stringify({ ...config.tiers.tier2, maxOutputTokens: 77 }))
  await raw.incr(`${prefix}{policy}:version`)
  await waitFor(() => live.snapshot().tiers.get('tier2')?.maxOutputTokens === 77, 2000, 'the poll to pick up the change')
  t.pass('picked up without a message')
})

t.test('with Redis unreachable a change is refused with 503 and nothing changes', async (t) => {
  const gw = await buildTestGateway(baseConfig('http://127.0.0.1:9', { redis: { url: 'redis://127.0.0.1:1', connectTimeoutMs: 100, keyPrefix: uniquePrefix('down') } }))
  t.teardown(gw.close)
  const res = await gw.admin.inject({ method: 'POST', url: '/admin/keys', headers: ADMIN, payload: { org: 'x', tier: 'tier1' } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().error.type, 'api_error')
  t.equal(gw.rt.policy.snapshot().keysById.size, 2, 'no key added')
})

t.test('without Redis, changes apply in memory on the one replica', async (t) => {
  const gw = await buildTestGateway(baseConfig())
  t.teardown(gw.close)
  const res = await gw.admin.inject({ method: 'PUT', url: '/admin/tiers/gold', headers: ADMIN, payload: { models: ['frontier-1'], capabilities: ['chat'] } })
  t.equal(res.statusCode, 200)
  t.ok(gw.rt.policy.snapshot().tiers.get('gold'), 'new tier in the snapshot')
  const key = await gw.admin.inject({ method: 'POST', url: '/admin/keys', headers: ADMIN, payload: { org: 'Gold', tier: 'gold', id: 'gold-1' } })
  t.equal(key.statusCode, 201)
  t.equal(key.json().id, 'gold-1')
  const dropTier = await gw.admin.inject({ method: 'DELETE', url: '/admin/tiers/gold', headers: ADMIN })
  t.equal(dropTier.statusCode, 400, 'a tier a key still uses cannot be dropped')
  t.match(dropTier.json().error.issues, [{ message: /unknown tier "gold"/ }])
})
