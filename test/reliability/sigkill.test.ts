/*
 * SIGKILL at random moments under load, several rounds on one audit directory (issue 10: the in-flight entry must
 * be durable before the request reaches the backend). After the last restart, every request the backend received
 * has exactly one record — its final one, or `outcome: unknown` written by recovery — none missing, none twice.
 */
import t from 'tap'
import { join } from 'node:path'
import {
  auditVerify, chat, completeness, countingBackend, describe, gatewayConfig, loadAgent, readAudit, startGateway,
  tempDir, writeConfig, type Gateway
} from '../helpers/reliability.js'
import { waitFor } from '../helpers/redis.js'

const ROUNDS = 4
const CALLERS = 20

t.test('SIGKILL at random moments under load: every request the backend received is on the record once', async (t) => {
  const backend = await countingBackend({ delayMs: [50, 200], chunks: 4, chunkMs: 30 })
  t.teardown(backend.close)
  const { dir, cleanup } = await tempDir('sigkill')
  t.teardown(cleanup)
  const auditDir = join(dir, 'audit')
  const file = await writeConfig(dir, gatewayConfig(backend.url, auditDir))
  let gw: Gateway | null = null
  t.teardown(() => { gw?.kill('SIGKILL') })

  let sent = 0
  let seq = 0
  for (let round = 0; round < ROUNDS; round++) {
    const current = await startGateway(file)
    gw = current
    const agent = loadAgent(CALLERS)
    let stop = false
    const callers = Array.from({ length: CALLERS }, async (_, c) => {
      while (!stop) {
        const n = seq++
        sent++
        // a mix of answers and streams, so some die mid-stream
        const a = await chat(current.url, `r${round}-c${c}-${n}`, { agent, body: { model: 'llama-3.1-8b', stream: n % 4 === 0, messages: [{ role: 'user', content: 'hi' }] }, timeoutMs: 10_000 })
        if (a.status === 0) return // the gateway is gone
      }
    })
    // let load build up, then kill at a random moment, not at a request boundary
    const before = backend.requests.length
    await waitFor(() => backend.requests.length - before >= 40, 20_000, `round ${round}: load through the gateway`)
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 400))
    await current.crash()
    stop = true
    await Promise.all(callers)
    agent.destroy()
    t.comment(`round ${round}: killed with ${backend.counts.size} ids received so far`)
  }

  // The last start recovers the previous run; one more request proves it serves, then a clean stop.
  const last = await startGateway(file)
  gw = last
  const ok = await chat(last.url, 'after-recovery')
  t.equal(ok.status, 200, 'the recovered gateway serves')
  t.equal(await last.stop(), 0, 'clean exit')
  gw = null

  const audit = await readAudit(auditDir)
  const c = completeness(backend.counts.keys(), audit)
  t.comment(describe(c, sent))
  t.same(backend.twice(), [], 'the backend never received a request twice')
  t.same(c.missing, [], `0 missing: every request the backend received has a record (${c.missing.length} of ${c.received} without one)`)
  t.same(c.duplicated, [], '0 duplicated')
  t.equal(audit.damaged, 0, 'no torn lines left in the segments after recovery')
  t.ok(audit.system.filter((s) => s.event === 'recovered').length >= ROUNDS, 'each recovery is on the record')
  const v = await auditVerify(auditDir)
  t.ok(v.ok, `audit verify: ${v.output}`)
})
