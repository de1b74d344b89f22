/*
 * Replicas never drift unseen: two real gateway processes sharing Redis, started on different files, show
 * different policy hashes in /readyz and /metrics; POST /admin/reload on one reloads both, and they agree again.
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { Redis } from 'ioredis'
import { baseConfig } from '../helpers/gateway.js'
import { startReplicas } from '../helpers/replicas.js'
import { deletePrefix, sharedRedisUrl, uniquePrefix, waitFor } from '../helpers/redis.js'

const ADMIN = { authorization: 'Bearer test-admin' }

const configWith = (rpm: number, redis: Record<string, unknown> | null): Record<string, unknown> => {
  const c = baseConfig('http://127.0.0.1:9', { log: { level: 'info' }, ...(redis === null ? {} : { redis }) })
  ;(c.tiers as Record<string, Record<string, unknown>>).tier2 = { models: ['llama-*'], capabilities: ['chat'], limits: { requestsPerMinute: rpm } }
  return c
}

async function policyOf (adminUrl: string): Promise<{ readyz: string, metrics: string }> {
  const ready = await (await fetch(`${adminUrl}/readyz`)).json() as { policy?: string }
  const body = await (await fetch(`${adminUrl}/metrics`, { headers: ADMIN })).text()
  const m = /^geogate_policy_info\{hash="([^"]+)"\} 1$/m.exec(body)
  return { readyz: ready.policy ?? '', metrics: m?.[1] ?? '' }
}

t.test('two replicas on different files show different versions; one reload reloads both', async (t) => {
  const prefix = uniquePrefix('drift')
  const redis = { url: sharedRedisUrl(), keyPrefix: prefix }
  const cleanup = new Redis(sharedRedisUrl())
  const reps = await startReplicas(2, (i) => configWith(i === 0 ? 60 : 120, redis))
  t.teardown(async () => { await reps.stop(); await deletePrefix(cleanup, prefix); cleanup.disconnect() })
  const [a, b] = reps.adminUrls as [string, string]

  const pa = await policyOf(a)
  const pb = await policyOf(b)
  t.match(pa.readyz, /^p-[0-9a-f]{16}$/, '/readyz names the policy hash')
  t.equal(pa.metrics, pa.readyz, '/metrics and /readyz show the same version')
  t.equal(pb.metrics, pb.readyz)
  t.not(pa.readyz, pb.readyz, 'different files: different versions, visible to the alert (count by hash > 1)')

  // B's file is fixed to match A's; the reload is asked of A only.
  await writeFile(reps.files[1] as string, await readFile(reps.files[0] as string, 'utf8'))
  const res = await fetch(`${a}/admin/reload`, { method: 'POST', headers: ADMIN })
  t.equal(res.status, 200)
  const body = await res.json() as { scope: string, reached: number, message: string, policy: string, replicas: Array<{ replica: string, ok: boolean, policy: string }> }
  t.equal(body.scope, 'all-replicas')
  t.equal(body.reached, 2, 'both replicas reached through the shared store')
  t.equal(body.replicas.length, 2, 'both acknowledged')
  t.ok(body.replicas.every((r) => r.ok && r.policy === pa.readyz), 'both now decide with A\'s policy')
  t.equal(new Set(body.replicas.map((r) => r.replica)).size, 2, 'each replica is named')
  t.equal(body.message, 'Reloaded 2 of 2 replica(s) reached through the shared store')
  await waitFor(async () => (await policyOf(b)).metrics === pa.readyz, 5000, 'B shows the same hash in /metrics')
  t.equal((await policyOf(b)).readyz, pa.readyz, 'and in /readyz')
})

t.test('without Redis, a reload says plainly it reloaded only this replica', async (t) => {
  const reps = await startReplicas(1, configWith(60, null))
  t.teardown(async () => { await reps.stop() })
  const res = await fetch(`${reps.adminUrls[0] ?? ''}/admin/reload`, { method: 'POST', headers: ADMIN })
  t.equal(res.status, 200)
  const body = await res.json() as { scope: string, message: string, replicas: unknown[] }
  t.equal(body.scope, 'this-replica')
  t.equal(body.message, 'Reloaded this replica only: there is no shared store (redis.url is not set), so no other replica can be reached')
  t.equal(body.replicas.length, 1)
})
