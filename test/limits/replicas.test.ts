import t from 'tap'
import { Redis } from 'ioredis'
import { sharedRedisUrl, uniquePrefix } from '../helpers/redis.js'
import { replicaLimitChecks } from '../helpers/limit-checks.js'

// Three real gateway processes (the built CLI) sharing the machine's Redis.
t.test('replicas sharing one Redis', async (t) => {
  const admin = new Redis(sharedRedisUrl())
  t.teardown(() => { admin.disconnect() })
  await replicaLimitChecks(t, { url: sharedRedisUrl() }, admin, uniquePrefix('replicas'))
})
