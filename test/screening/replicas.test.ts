/*
 * Two gateways sharing one Redis: the list imported on A is the list on B; an import that lists an existing
 * key's organisation suspends the key on both within a second, and the next request there gets 403.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { baseConfig, buildTestGateway, type TestGateway } from '../helpers/gateway.js'
import { testRedis, uniquePrefix, deletePrefix, waitFor } from '../helpers/ops.js'
import { cslCsvText, PARTIES } from '../helpers/screening.js'

const ADMIN = { authorization: 'Bearer test-admin' }

t.test('two replicas sharing Redis', async (t) => {
  const redis = await testRedis()
  const prefix = uniquePrefix('screening')
  const cfg = baseConfig('http://127.0.0.1:9', { redis: { url: redis.url, keyPrefix: prefix } })
  const a = await buildTestGateway(cfg)
  const b = await buildTestGateway(cfg)
  t.teardown(async () => {
    await a.close(); await b.close()
    await deletePrefix(redis.url, prefix)
    await redis.stop()
  })
  const models = async (gw: TestGateway, key: string): Promise<number> =>
    (await gw.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: '8.8.8.8', headers: { authorization: `Bearer ${key}` } })).statusCode
  const version = async (gw: TestGateway): Promise<number | null> =>
    (await gw.admin.inject({ method: 'GET', url: '/admin/screening', headers: ADMIN })).json().list?.version ?? null
  const importOn = async (gw: TestGateway, text: string): Promise<{ statusCode: number, json: () => any }> =>
    await gw.admin.inject({ method: 'POST', url: '/admin/screening/import?name=consolidated.csv&date=2026-11-30', headers: { ...ADMIN, 'content-type': 'text/csv' }, payload: text })

  const first = await importOn(a, cslCsvText(PARTIES))
  t.equal(first.statusCode, 200)
  const v1 = first.json().list.version as number
  await waitFor(async () => await version(b) === v1, 2000, 'replica B on the first list')
  const created = (await b.admin.inject({ method: 'POST', url: '/admin/keys', headers: ADMIN, payload: { org: 'Orion Lattice Semiconductors GmbH', tier: 'tier1', id: 'orion' } })).json()
  t.equal(created.status, 'active', 'screened on B against the list imported on A: clear')
  await waitFor(async () => await models(a, created.key) === 200, 1000, 'the key on A')

  t.test('a replica started after the import serves the list from its start, not from its first poll', async (t) => {
    const c = await buildTestGateway(cfg)
    t.teardown(async () => { await c.close() })
    t.equal(await version(c), v1, 'the list in service as soon as the gateway is built')
  })

  t.test('a malformed list keeps the old one on every replica', async (t) => {
    const cut = cslCsvText([...PARTIES, { id: '3001', name: 'Orion Lattice Semiconductor AG' }]).slice(0, -20)
    const res = await importOn(a, cut)
    t.equal(res.statusCode, 400)
    t.same([await version(a), await version(b)], [v1, v1])
    const raw = new Redis(redis.url)
    t.teardown(() => { raw.disconnect() })
    const pointer = JSON.parse(await raw.get(`${prefix}{screening}:current`) ?? 'null') as { meta: { version: number } }
    t.equal(pointer.meta.version, v1, 'the pointer in Redis did not move')
    t.equal(await models(b, created.key), 200)
  })

  t.test('an import that lists the key\'s organisation suspends it on both replicas within a second', async (t) => {
    const start = Date.now()
    const res = await importOn(a, cslCsvText([...PARTIES, { id: '3001', name: 'Orion Lattice Semiconductor AG', addresses: [['Werkstr. 1', 'Dresden', '', '01109', 'DE']] }]))
    t.equal(res.statusCode, 200)
    t.same(res.json().rescreen.suspended.map((s: { id: string }) => s.id), ['orion'])
    t.equal(await models(a, created.key), 403, 'at once on the replica that imported')
    const took = await waitFor(async () => await models(b, created.key) === 403, 1000, 'the suspension on replica B')
    t.ok(took < 1000, `replica B refused the key ${took} ms after the suspension (${Date.now() - start} ms after the import began)`)
    const next = await b.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: '8.8.8.8', headers: { authorization: `Bearer ${created.key as string}` } })
    t.equal(next.json().error.code, 'party_restricted')
    await waitFor(async () => await version(b) === res.json().list.version, 2000, 'replica B on the new list')
    const onB = (await b.admin.inject({ method: 'GET', url: '/admin/keys/orion', headers: ADMIN })).json()
    t.equal(onB.status, 'suspended')
    t.equal(onB.screening.entryId, 'EL:3001')
  })
})
