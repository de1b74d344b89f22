import t from 'tap'
import { runCli, type CliResult } from '../helpers/process.js'
import { writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import pino from 'pino'
import { baseConfig, startUpstream } from '../helpers/gateway.js'
import { startGateway } from '../../src/server.js'

/** Run the built CLI (asynchronously: the gateway answering it lives in this process). */
const geogate = async (args: string[], env: Record<string, string>): Promise<CliResult> => await runCli(args, env)

t.test('geogate keys create | list | rotate | revoke against a running gateway', async (t) => {
  const up = await startUpstream((_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{}') })
  const dir = await mkdtemp(join(tmpdir(), 'geogate-keys-'))
  const file = join(dir, 'geogate.yaml')
  await writeFile(file, stringify(baseConfig(up.url, { server: { host: '127.0.0.1', port: 0, adminPort: 0 }, audit: { dir: join(dir, 'audit') } })))
  const gw = await startGateway({ configFile: file, logger: pino({ level: 'silent' }) })
  t.teardown(async () => { await gw.shutdown(); await up.close(); await rm(dir, { recursive: true, force: true }) })
  const env = { GEOGATE_ADMIN_TOKEN: 'test-admin' }
  const admin = ['--admin-url', gw.adminUrl]
  const chat = async (key: string): Promise<number> => (await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama-3.1-8b' })
  })).status

  const created = await geogate(['keys', 'create', '--org', 'CLI Org', '--tier', 'tier1', '--country', 'DE', '--id', 'cli-1', ...admin], env)
  t.equal(created.code, 0, created.stderr)
  const raw = created.stdout.trim()
  t.match(raw, /^gg-[A-Za-z0-9_-]{43}$/, 'stdout is exactly the raw key')
  t.match(created.stderr, /shown this once/)
  t.equal(await chat(raw), 200, 'the new key works')

  const list = await geogate(['keys', 'list', ...admin], env)
  t.equal(list.code, 0)
  t.match(list.stdout, /cli-1\s+CLI Org\s+tier1\s+DE/)
  t.notOk(list.stdout.includes(raw), 'list shows no secrets')
  const listJson = await geogate(['keys', 'list', '--json', ...admin], env)
  t.ok((JSON.parse(listJson.stdout) as Array<{ id: string }>).some((k) => k.id === 'cli-1'))

  const rotated = await geogate(['keys', 'rotate', 'cli-1', ...admin], env)
  t.equal(rotated.code, 0, rotated.stderr)
  const raw2 = rotated.stdout.trim()
  t.not(raw2, raw)
  t.equal(await chat(raw), 401, 'the old key stops working')
  t.equal(await chat(raw2), 200, 'the rotated key works')

  const revoked = await geogate(['keys', 'revoke', 'cli-1', ...admin], env)
  t.equal(revoked.code, 0, revoked.stderr)
  t.equal(await chat(raw2), 401, 'revoked')

  const bad = await geogate(['keys', 'create', '--org', 'X', '--tier', 'platinum', ...admin], env)
  t.equal(bad.code, 1)
  t.match(bad.stderr, /400[\s\S]*\/keys\/\d+\/tier: unknown tier "platinum"/, 'every error printed with its path')
  const auditor = await geogate(['keys', 'revoke', 'k1', ...admin], { GEOGATE_ADMIN_TOKEN: 'test-auditor' })
  t.equal(auditor.code, 1)
  t.match(auditor.stderr, /403/)
  t.equal(await chat('test-key-tier1'), 200, 'the auditor changed nothing')
  const noToken = await geogate(['keys', 'list', ...admin], { GEOGATE_ADMIN_TOKEN: '' })
  t.equal(noToken.code, 2)
  t.match(noToken.stderr, /GEOGATE_ADMIN_TOKEN/)
})
