import t from 'tap'
import { Cluster } from 'ioredis'
import { startRedisCluster, uniquePrefix, windowTotal, deletePrefix } from '../helpers/redis.js'
import { replicaLimitChecks } from '../helpers/limit-checks.js'
import { RedisStore } from '../../src/limits/redis-store.js'

// A real 3-master Redis Cluster started here (redis-server --cluster-enabled yes + redis-cli --cluster create).
t.test('3-node Redis Cluster', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(async () => { await cluster.stop() })
  const nodes = cluster.seeds.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) }))
  const admin = new Cluster(nodes)
  t.teardown(() => { admin.disconnect() })

  t.test('replicas sharing the Cluster: hash-tagged keys keep each script on one slot, same limit checks', async (t) => {
    await replicaLimitChecks(t, { mode: 'cluster', nodes: cluster.seeds }, admin, uniquePrefix('cluster'), 2)
  })

  t.test('a request under a location quota spans two slots; a refusal in one gives back the other', async (t) => {
    const store = new RedisStore(admin, true)
    const p = uniquePrefix('slots')
    t.teardown(async () => { await deletePrefix(admin, p) })
    const rpm = { kind: 'window' as const, key: `${p}{k:a}:rpm`, tag: 'k:a', limit: 10, cost: 1, ms: 60_000 }
    const quota = { kind: 'period' as const, key: `${p}{q:b}`, tag: 'q:b', limit: 3, cost: 1, ms: 0, period: 'day' as const }
    t.not(await admin.cluster('KEYSLOT', rpm.key), await admin.cluster('KEYSLOT', quota.key), 'two slots')
    const results = []
    for (let i = 0; i < 5; i++) results.push(await store.acquire([rpm, quota], `l${i}`))
    t.same(results.map((r) => r.allowed), [true, true, true, false, false])
    t.equal(results[3]?.refused, 1, 'the quota refused')
    t.equal(await windowTotal(admin, rpm.key), 3, 'the per-key counter was given back for the refused requests')
  })
})
