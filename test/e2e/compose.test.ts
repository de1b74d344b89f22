import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { ROOT, spawnCli } from '../helpers/process.js'

/*
 * No Docker engine runs the tests, so docker/compose.yaml and the Dockerfile are held to what they say by
 * reading them: the commands they run are real CLI invocations, the environment they set makes the shipped
 * config point at the services they define, and the timings agree with the config.
 */

interface Service { command: string[], environment?: Record<string, string>, stop_grace_period?: string, healthcheck?: { test: string[] } }

t.test('docker/compose.yaml: gateway, mock backend and Redis wired to each other', async (t) => {
  const compose = parse(await readFile(join(ROOT, 'docker', 'compose.yaml'), 'utf8')) as { services: Record<string, Service> }
  const { gateway, mock, redis } = compose.services
  if (gateway === undefined || mock === undefined || redis === undefined) throw new Error('services missing')
  t.equal(gateway.command[0], 'serve')
  const configFile = gateway.command[gateway.command.indexOf('--config') + 1] ?? ''
  const { config } = await loadConfig(join(ROOT, configFile), gateway.environment ?? {})
  t.equal(config.server.host, '0.0.0.0', 'the data plane listens beyond the container')
  const mockPort = mock.command[mock.command.indexOf('--port') + 1]
  t.same(Object.values(config.backends).map((b) => b.url), [`http://mock:${String(mockPort)}`], 'the backend is the mock service')
  t.equal(config.redis.url, 'redis://redis:6379', 'limits shared through the redis service')
  const grace = Number(/^(\d+)s$/.exec(gateway.stop_grace_period ?? '')?.[1]) * 1000
  t.ok(grace > config.server.shutdownGraceMs, 'compose waits longer than the drain before SIGKILL')
  t.match(mock.healthcheck?.test.join(' ') ?? '', `http://127.0.0.1:${String(mockPort)}/health`)
  // Signed audit digests, with the key from a compose secret (mounted at /run/secrets/<name>).
  t.equal(config.audit.require, 'signed')
  const secrets = (compose as unknown as { secrets: Record<string, { file: string }> }).secrets
  const used = (gateway as unknown as { secrets: string[] }).secrets
  t.ok(used.every((n) => secrets[n] !== undefined), 'the secrets the gateway uses are declared')
  t.same(used.map((n) => `/run/secrets/${n}`), [config.audit.signingKeyFile], 'audit.signingKeyFile is the mounted secret')

  // The mock's own command line, on a free port: it starts and answers the path its healthcheck asks.
  const args = mock.command.slice(1).map((a, i, all) => (all[i - 1] === '--port' ? '0' : all[i - 1] === '--host' ? '127.0.0.1' : a))
  const proc = spawnCli(['mock-backend', ...args])
  t.teardown(() => { proc.kill() })
  const line = await proc.waitForLine((l) => l.msg === 'mock backend listening')
  const res = await fetch(`${String(line.url)}/health`)
  t.equal(res.status, 200)
})

t.test('Dockerfile: non-root, production dependencies, health on the admin plane, the shipped config', async (t) => {
  const df = await readFile(join(ROOT, 'Dockerfile'), 'utf8')
  const { config } = await loadConfig(join(ROOT, 'config', 'geogate.yaml'), {})
  t.match(df, /^USER node$/m)
  t.match(df, /npm ci --omit=dev/)
  t.match(df, new RegExp(`HEALTHCHECK[^\\n]*\\\\\\n[^\\n]*http://127\\.0\\.0\\.1:${config.server.adminPort}/healthz`))
  t.match(df, /^ENTRYPOINT \["node", "dist\/cli\/index\.js"\]$/m)
  t.match(df, /^CMD \["serve", "--config", "config\/geogate\.yaml"\]$/m)
  t.equal((df.match(/^FROM /gm) ?? []).length, 3, 'multi-stage: build, production deps, runtime')
})
