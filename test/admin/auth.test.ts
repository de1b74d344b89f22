import t from 'tap'
import { writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import pino from 'pino'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'
import { adminChanges } from '../helpers/ops.js'
import { startGateway } from '../../src/server.js'

const ADMIN = { authorization: 'Bearer test-admin' }
const AUDITOR = { authorization: 'Bearer test-auditor' }

/** Every route that changes something, with a body that an admin would get accepted. */
const MUTATIONS: Array<{ method: 'PUT' | 'POST' | 'DELETE', url: string, payload?: Record<string, unknown> }> = [
  { method: 'PUT', url: '/admin/tiers/tier2', payload: { models: ['*'], capabilities: ['chat'], maxOutputTokens: null } },
  { method: 'PUT', url: '/admin/tiers/brand-new', payload: { models: ['*'] } },
  { method: 'DELETE', url: '/admin/tiers/tier1' },
  { method: 'PUT', url: '/admin/locations', payload: { tiers: { tier1: ['US'] }, default: 'tier1', unknown: 'tier1' } },
  { method: 'DELETE', url: '/admin/locations' },
  { method: 'POST', url: '/admin/keys', payload: { org: 'Mallory', tier: 'tier1', id: 'mallory' } },
  { method: 'DELETE', url: '/admin/keys/k1' },
  { method: 'POST', url: '/admin/keys/k1/rotate' },
  { method: 'POST', url: '/admin/reload' },
  { method: 'POST', url: '/admin/unknown-future-route', payload: {} }
]

t.test('an auditor token can read and cannot change anything', async (t) => {
  const gw = await buildTestGateway(baseConfig())
  t.teardown(gw.close)
  const state = async (): Promise<string> => JSON.stringify(await Promise.all(['/admin/tiers', '/admin/locations', '/admin/keys']
    .map(async (url) => (await gw.admin.inject({ method: 'GET', url, headers: AUDITOR })).json())))
  const before = await state()
  const snap = gw.rt.policy.snapshot()
  for (const m of ['/admin/tiers', '/admin/tiers/tier1', '/admin/locations', '/admin/keys', '/admin/keys/k1', '/metrics']) {
    t.equal((await gw.admin.inject({ method: 'GET', url: m, headers: AUDITOR })).statusCode, 200, `auditor reads ${m}`)
  }
  for (const m of MUTATIONS) {
    const res = await gw.admin.inject({ ...m, headers: AUDITOR })
    t.equal(res.statusCode, 403, `${m.method} ${m.url} → 403`)
    t.match(res.json(), { error: { type: 'permission_error', code: 'forbidden' } }, 'OpenAI-style error')
  }
  t.equal(await state(), before, 'tiers, locations and keys unchanged')
  t.equal(gw.rt.policy.snapshot(), snap, 'the very same policy snapshot')
  t.same(await adminChanges(gw.rt), [], 'nothing was changed, so nothing audited')
  // The same routes with an admin token do change things: the 403s above were about the role.
  const ok = await gw.admin.inject({ method: 'PUT', url: '/admin/tiers/tier2', payload: { models: ['*'], capabilities: ['chat'], maxOutputTokens: null }, headers: ADMIN })
  t.equal(ok.statusCode, 200)
  t.match(await adminChanges(gw.rt), [{ actor: 'admin', role: 'admin', action: 'tier.put', target: 'tier2' }], 'and that change is audited')
})

t.test('missing or wrong token: 401, OpenAI-style; health stays open', async (t) => {
  // Many failures from one address on purpose: the brute-force guard is off here (tested below).
  const gw = await buildTestGateway(baseConfig(undefined, { limiter: { authFailuresPerMinute: 0 } }))
  t.teardown(gw.close)
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic dGVzdC1hZG1pbg==' }, { authorization: 'Bearer test-key-tier1' }]) {
    for (const m of [{ method: 'GET' as const, url: '/admin/keys' }, { method: 'GET' as const, url: '/metrics' }, ...MUTATIONS]) {
      const res = await gw.admin.inject({ ...m, headers })
      t.equal(res.statusCode, 401, `${m.method} ${m.url} with ${JSON.stringify(headers)}`)
      t.equal(res.json().error.type, 'authentication_error')
    }
  }
  t.equal((await gw.admin.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  t.equal((await gw.admin.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
})

t.test('token guessing from one address is cut off with 429 before the token is even checked', async (t) => {
  const gw = await buildTestGateway(baseConfig(undefined, { limiter: { authFailuresPerMinute: 2 } }))
  t.teardown(gw.close)
  const codes: number[] = []
  for (let i = 0; i < 4; i++) codes.push((await gw.admin.inject({ method: 'GET', url: '/admin/keys', headers: { authorization: `Bearer guess-${i}` } })).statusCode)
  t.same(codes.slice(0, 2), [401, 401])
  t.equal(codes[3], 429)
  t.equal((await gw.admin.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'health stays open')
})

t.test('admin tokens are held as hashes and can be named', async (t) => {
  const raw = baseConfig()
  const gw = await buildTestGateway(raw)
  t.teardown(gw.close)
  t.notOk(JSON.stringify(gw.rt.config.admin).includes('test-admin'), 'no raw token in the configuration')
})

t.test('the admin plane is never on the public port', async (t) => {
  const up = await startUpstream((_req, res) => { res.end('{}') })
  const dir = await mkdtemp(join(tmpdir(), 'geogate-ports-'))
  const file = join(dir, 'geogate.yaml')
  await writeFile(file, stringify(baseConfig(up.url, { server: { host: '127.0.0.1', port: 0, adminPort: 0 }, audit: { dir: join(dir, 'audit') } })))
  const gw = await startGateway({ configFile: file, logger: pino({ level: 'silent' }) })
  t.teardown(async () => { await gw.shutdown(); await up.close(); await rm(dir, { recursive: true, force: true }) })
  t.not(gw.url, gw.adminUrl, 'two listeners')
  for (const path of ['/metrics', '/healthz', '/readyz', '/admin/keys', '/admin/tiers/tier1', '/admin/locations']) {
    for (const headers of [ADMIN, { authorization: 'Bearer test-key-tier1' }]) {
      const pub = await fetch(gw.url + path, { headers })
      const body = await pub.text()
      t.ok(pub.status === 404 || pub.status === 401, `public ${path} → ${pub.status}`)
      t.notMatch(body, /geogate_requests_total|"org"|capabilities/, 'no admin data on the public port')
    }
  }
  const adm = await fetch(gw.adminUrl + '/admin/tiers/tier1', { headers: ADMIN })
  t.equal(adm.status, 200, 'the admin port serves it')
  const post = await fetch(gw.url + '/admin/keys', { method: 'POST', headers: { ...ADMIN, 'content-type': 'application/json' }, body: JSON.stringify({ org: 'x', tier: 'tier1' }) })
  t.not(post.status, 201, 'no key can be made through the public port')
  t.equal(gw.runtime.policy.snapshot().keysById.size, 2)
})
