/*
 * Redis frozen (SIGSTOP) and killed (SIGKILL), then back, under a spawned gateway, in failMode open and closed
 * (issue 10, "what held": keep it holding). Every request is answered within a bound — a Redis outage never hangs
 * a request — open serves, closed refuses with 503, and every request answered is on the record once.
 */
import t, { type Test } from 'tap'
import { join } from 'node:path'
import {
  chat, completeness, countingBackend, describe, errorCode, gatewayConfig, loadAgent, readAudit, startGateway,
  tempDir, writeConfig, type Answer, type Gateway
} from '../helpers/reliability.js'
import { startRedisServer, uniquePrefix, waitFor, type RedisProcess } from '../helpers/redis.js'

/** commandTimeoutMs is 300 ms; an answer later than this means a request waited on a dead or frozen Redis. */
const ANSWER_WITHIN_MS = 1500
const PER_PHASE = 40

async function scenario (t: Test, failMode: 'open' | 'closed'): Promise<void> {
  const backend = await countingBackend({ delayMs: 5 })
  const { dir, cleanup } = await tempDir(`redis-${failMode}`)
  let redis: RedisProcess = await startRedisServer()
  const port = redis.port
  let gw: Gateway | null = null
  t.teardown(async () => {
    if (gw !== null) await gw.crash()
    await redis.stop()
    await backend.close()
    await cleanup()
  })
  const auditDir = join(dir, 'audit')
  const base = gatewayConfig(backend.url, auditDir)
  const file = await writeConfig(dir, gatewayConfig(backend.url, auditDir, {
    redis: { url: redis.url, keyPrefix: uniquePrefix(`reliability-${failMode}`), commandTimeoutMs: 300, connectTimeoutMs: 500 },
    limiter: { breakerMs: 500 },
    tiers: {
      ...(base.tiers as Record<string, unknown>),
      tier1: { models: ['*'], capabilities: ['chat', 'streaming'], limits: { requestsPerMinute: 1_000_000, tokensPerMinute: 100_000_000, concurrency: 64 }, failMode }
    }
  }))
  gw = await startGateway(file)
  const g = gw
  const agent = loadAgent(8)
  t.teardown(() => { agent.destroy() })

  const answered = new Map<string, Answer>()
  let n = 0
  /** PER_PHASE requests, 8 at a time; every one must come back within the bound */
  const phase = async (name: string): Promise<Answer[]> => {
    const out: Answer[] = []
    let left = PER_PHASE
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (left-- > 0) {
        const id = `${failMode}-${name}-${n++}`
        const a = await chat(g.url, id, { agent, timeoutMs: 10_000 })
        answered.set(id, a)
        out.push(a)
      }
    }))
    const slowest = Math.max(...out.map((a) => a.ms))
    const byStatus = out.reduce<Record<string, number>>((acc, a) => { const k = `${a.status} ${errorCode(a) ?? ''}`.trim(); acc[k] = (acc[k] ?? 0) + 1; return acc }, {})
    t.comment(`${failMode}/${name}: ${JSON.stringify(byStatus)}, slowest ${slowest} ms`)
    t.ok(out.every((a) => a.status !== 0), `${name}: every request answered`)
    t.ok(slowest <= ANSWER_WITHIN_MS, `${name}: every answer within ${ANSWER_WITHIN_MS} ms (slowest ${slowest} ms)`)
    return out
  }
  const allServed = (out: Answer[], name: string): void => { t.ok(out.every((a) => a.status === 200), `${name}: served`) }
  const outage = (out: Answer[], name: string): void => {
    if (failMode === 'open') allServed(out, `${name} (fail open)`)
    else t.ok(out.every((a) => a.status === 503), `${name} (fail closed): refused 503`)
  }
  const serving = async (name: string): Promise<void> => {
    // the limiter's breaker probes Redis again after breakerMs: wait until requests are served again, five in a row
    let run = 0
    await waitFor(async () => {
      run = (await chat(g.url, `${failMode}-${name}-probe-${n++}`, { agent })).status === 200 ? run + 1 : 0
      return run >= 5
    }, 10_000, `${name}: served again`)
  }

  allServed(await phase('up'), 'Redis up')

  redis.proc.kill('SIGSTOP')
  outage(await phase('frozen'), 'Redis frozen')
  redis.proc.kill('SIGCONT')
  await serving('thawed')
  allServed(await phase('thawed'), 'Redis thawed')

  await redis.stop()
  outage(await phase('killed'), 'Redis killed')
  redis = await startRedisServer([], port)
  await serving('restarted')
  allServed(await phase('restarted'), 'Redis restarted')

  t.equal(await g.stop(10_000), 0, 'clean exit')
  gw = null
  const audit = await readAudit(auditDir)
  const c = completeness(backend.counts.keys(), audit)
  t.comment(`${failMode}: ${describe(c, n)}`)
  t.same(c.missing, [], '0 missing: every request the backend received has a record')
  t.same(c.duplicated, [], '0 duplicated')
  t.same(backend.twice(), [], 'the backend never received a request twice')
  const unrecorded = [...answered].filter(([id, a]) => a.status !== 0 && audit.byId.get(id)?.length !== 1).map(([id]) => id)
  t.same(unrecorded, [], 'every answered request, served or refused, has exactly one record')
  const degraded = audit.interactions.filter((r) => r.degraded === true).length
  t.ok(degraded > 0, `decisions made without Redis are marked degraded (${degraded})`)
}

t.test('Redis frozen and killed, failMode open', async (t) => { await scenario(t, 'open') })
t.test('Redis frozen and killed, failMode closed', async (t) => { await scenario(t, 'closed') })
