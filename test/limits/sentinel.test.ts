import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { gatewayWithUpstream } from '../helpers/gateway.js'
import { startRedisServer, freePort, ping, waitFor, windowTotal } from '../helpers/redis.js'

// redis.mode: sentinel — the gateway asks a Sentinel (started here, monitoring a master started here) where the
// master is, and keeps its counters there.
t.test('Redis Sentinel: limits kept on the master the Sentinel names', async (t) => {
  const master = await startRedisServer()
  const dir = await mkdtemp(join(tmpdir(), 'geogate-sentinel-'))
  const port = await freePort()
  const conf = join(dir, 'sentinel.conf')
  await writeFile(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor gg 127.0.0.1 ${master.port} 1`, 'sentinel down-after-milliseconds gg 5000', ''].join('\n'))
  const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  t.teardown(async () => {
    const gone = new Promise((resolve) => sentinel.once('exit', resolve))
    sentinel.kill('SIGKILL')
    await gone
    await master.stop()
    await rm(dir, { recursive: true, force: true })
  })
  await waitFor(async () => await ping(port), 5000, 'sentinel up')
  const { up, gw } = await gatewayWithUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{}') }, {
    // generous timeouts: this is about finding the master, not about timing out (the fault tests do that)
    redis: { mode: 'sentinel', nodes: [`127.0.0.1:${port}`], sentinelName: 'gg', keyPrefix: 'gg-sentinel:', commandTimeoutMs: 2000, connectTimeoutMs: 5000 },
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat'], limits: { requestsPerMinute: 5 }, failMode: 'closed' },
      tier2: { models: ['llama-*'], capabilities: ['chat'] },
      embargoed: { deny: true }
    }
  })
  const codes = await Promise.all(Array.from({ length: 12 }, async () => (await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { authorization: 'Bearer test-key-tier1' },
    payload: { model: 'llama-3.1-8b', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }
  })).statusCode))
  t.equal(codes.filter((c) => c === 200).length, 5, `admitted (${codes.join(' ')})`)
  t.equal(codes.filter((c) => c === 429).length, 7)
  const direct = new Redis(master.url)
  t.teardown(() => { direct.disconnect() })
  t.equal(await windowTotal(direct, 'gg-sentinel:lim:{k:k1}:tier1:rpm'), 5, 'the counter lives on the master')
})
