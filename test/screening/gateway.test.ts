/*
 * Screening through the gateway (no Redis: the list is kept in files): key creation refused or sent to review,
 * a list import suspending a key, a malformed import keeping the list, clearance recorded with who and why.
 */
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { baseConfig, buildTestGateway, sha, type TestGateway } from '../helpers/gateway.js'
import { cslCsvText, cslJsonText, PARTIES } from '../helpers/screening.js'

const ADMIN = { authorization: 'Bearer test-admin' }

function config (): Record<string, unknown> {
  const c = baseConfig()
  return {
    ...c,
    admin: { tokens: [{ sha256: sha('test-admin'), role: 'admin', name: 'ops-alice' }, { sha256: sha('test-auditor'), role: 'auditor', name: 'aud' }] },
    screening: { blockScore: 0.92, reviewScore: 0.7 }
  }
}

async function importList (gw: TestGateway, text: string, name = 'consolidated.csv'): Promise<{ statusCode: number, json: () => any }> {
  return await gw.admin.inject({ method: 'POST', url: `/admin/screening/import?name=${name}&date=2026-11-30`, headers: { ...ADMIN, 'content-type': name.endsWith('.json') ? 'application/json' : 'text/csv' }, payload: text })
}

async function createKey (gw: TestGateway, body: Record<string, unknown>): Promise<{ statusCode: number, json: () => any }> {
  return await gw.admin.inject({ method: 'POST', url: '/admin/keys', headers: ADMIN, payload: body })
}

async function models (gw: TestGateway, key: string): Promise<{ statusCode: number, json: () => any }> {
  return await gw.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: '8.8.8.8', headers: { authorization: `Bearer ${key}` } })
}

async function adminRecords (gw: TestGateway): Promise<Array<Record<string, any>>> {
  await gw.rt.audit.flush()
  const dir = join(gw.dir, 'audit')
  const out: Array<Record<string, any>> = []
  for (const f of (await readdir(dir)).filter((x) => x.endsWith('.jsonl') && !x.includes('inflight')).sort()) {
    for (const l of (await readFile(join(dir, f), 'utf8')).split('\n')) if (l !== '') out.push(JSON.parse(l))
  }
  return out.filter((r) => r.kind === 'admin')
}

t.test('an organisation listed under a variant spelling with a legal suffix gets no key', async (t) => {
  const gw = await buildTestGateway(config())
  t.teardown(gw.close)
  t.equal((await importList(gw, cslCsvText(PARTIES))).statusCode, 200)
  const before = (await gw.admin.inject({ method: 'GET', url: '/admin/keys', headers: ADMIN })).json().keys.length
  const res = await createKey(gw, { org: 'SHENZHEN DRAGON-FLY MICROELECTRONICS COMPANY LIMITED', tier: 'tier1', country: 'CN', id: 'dfly' })
  t.equal(res.statusCode, 403)
  const err = res.json().error
  t.equal(err.code, 'party_restricted')
  t.match(err.message, /"Shenzhen Dragonfly Microelectronics Co\., Ltd\." \(EL:1001\) on Entity List \(EL\)/, 'the entry and its list named to the admin')
  t.equal(err.matches[0].entryId, 'EL:1001')
  t.ok(err.matches[0].score >= 0.92)
  t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/keys', headers: ADMIN })).json().keys.length, before, 'no key was created')
  // in Cyrillic, with the Russian legal form: the SDN entry's alt name
  const ru = await createKey(gw, { org: 'ООО Звездолет', tier: 'tier1' })
  t.equal(ru.statusCode, 403)
  t.equal(ru.json().error.matches[0].entryId, 'SDN:1002')
  const refused = (await adminRecords(gw)).filter((r) => r.action === 'key.refuse')
  t.equal(refused.length, 2, 'each refusal is in the audit chain')
  t.equal(refused[0]?.actor, 'ops-alice')
  t.equal(refused[0]?.after.matches[0].entryId, 'EL:1001')
})

t.test('a near miss creates the key in review: it calls nothing until an admin clears it, with a reason', async (t) => {
  const gw = await buildTestGateway(config())
  t.teardown(gw.close)
  await importList(gw, cslJsonText(PARTIES), 'consolidated.json')
  const res = await createKey(gw, { org: 'Kestrel Avionics', tier: 'tier1', id: 'kestrel' })
  t.equal(res.statusCode, 201)
  const k = res.json()
  t.equal(k.status, 'review')
  t.equal(k.screening.entryId, 'MEU:1003')
  t.ok(k.screening.score >= 0.7 && k.screening.score < 0.92, `review band (${k.screening.score as number})`)
  const refused = await models(gw, k.key)
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().error.code, 'party_restricted')
  const why = await gw.admin.inject({ method: 'GET', url: '/admin/explain?ip=8.8.8.8&keyId=kestrel&model=llama-3.1-8b', headers: ADMIN })
  t.equal(why.json().rule, 'party:review', 'explain says why')
  t.equal(why.json().decision.code, 'party_restricted')
  t.equal(why.json().party.screening.entryName, 'Kestrel Avionics Trading FZE')
  t.equal((await gw.admin.inject({ method: 'POST', url: '/admin/keys/kestrel/clear', headers: { authorization: 'Bearer test-auditor' }, payload: { reason: 'x' } })).statusCode, 403, 'auditors cannot clear')
  t.equal((await gw.admin.inject({ method: 'POST', url: '/admin/keys/kestrel/clear', headers: ADMIN, payload: {} })).statusCode, 400, 'a reason is required')
  const cleared = await gw.admin.inject({ method: 'POST', url: '/admin/keys/kestrel/clear', headers: ADMIN, payload: { reason: 'Kestrel Avionics Inc. of Ohio, not the FZE: checked registry extract 2026-11-30' } })
  t.equal(cleared.statusCode, 200)
  t.equal(cleared.json().status, 'active')
  t.equal((await models(gw, k.key)).statusCode, 200, 'the cleared key calls models')
  const rec = (await adminRecords(gw)).find((r) => r.action === 'key.clear')
  t.equal(rec?.actor, 'ops-alice', 'who')
  t.match(rec?.after.reason, /not the FZE/, 'and why')
  // re-importing the same list does not raise the cleared entry again
  const again = await importList(gw, cslCsvText(PARTIES))
  t.same([again.json().rescreen.suspended.length, again.json().rescreen.review.length], [0, 0])
  t.equal((await models(gw, k.key)).statusCode, 200)
})

t.test('an import that lists an existing key\'s organisation suspends it; a malformed one keeps the old list', async (t) => {
  const gw = await buildTestGateway(config())
  t.teardown(gw.close)
  const first = await importList(gw, cslCsvText(PARTIES))
  t.equal(first.json().list.entries, 5)
  const k = (await createKey(gw, { org: 'Helios Quantum Devices Ltd', tier: 'tier1', id: 'helios' })).json()
  t.equal(k.status, 'active')
  t.equal((await models(gw, k.key)).statusCode, 200)

  const bad = cslCsvText([...PARTIES, { id: '2001', name: 'Helios Quantum Devices Limited' }]).replace('Helios Quantum Devices Limited', '"Helios Quantum')
  const refused = await importList(gw, bad)
  t.equal(refused.statusCode, 400)
  t.match(refused.json().error.message, /the list in service is kept/)
  t.equal(refused.json().error.issues[0].line, 7, 'the line of the bad row')
  t.equal((await gw.admin.inject({ method: 'GET', url: '/admin/screening', headers: ADMIN })).json().list.version, first.json().list.version, 'the old list stays')
  t.equal((await models(gw, k.key)).statusCode, 200, 'nothing suspended')

  const next = await importList(gw, cslCsvText([...PARTIES, { id: '2001', name: 'Helios Quantum Devices Limited', addresses: [['1 Main St', 'Tallinn', '', '10111', 'EE']] }]))
  t.equal(next.statusCode, 200)
  t.same(next.json().rescreen.suspended.map((s: { id: string }) => s.id), ['helios'])
  const after = await models(gw, k.key)
  t.equal(after.statusCode, 403)
  t.equal(after.json().error.code, 'party_restricted')
  const rec = (await adminRecords(gw)).find((r) => r.action === 'key.suspend')
  t.equal(rec?.target, 'helios')
  t.equal(rec?.after.match.entryId, 'EL:2001')
  const info = (await gw.admin.inject({ method: 'GET', url: '/admin/screening', headers: ADMIN })).json().list
  t.same([info.entries, info.rows, info.date], [6, 6, '2026-11-30T00:00:00.000Z'])
  const metrics = (await gw.admin.inject({ method: 'GET', url: '/metrics', headers: ADMIN })).body
  t.match(metrics, /geogate_screening_list_entries 6/)
  t.match(metrics, /^geogate_screening_list_timestamp_seconds 1795996800$/m, "the list's date")
  const fresh = Date.now() - Date.parse('2026-11-30') < 7 * 86_400_000
  t.match(metrics, new RegExp(`^geogate_screening_list_stale ${fresh ? 0 : 1}$`, 'm'), 'stale past screening.maxAgeDays')
})

t.test('a list older than screening.maxAgeDays is reported stale: info, metric, /readyz', async (t) => {
  const gw = await buildTestGateway(config())
  t.teardown(gw.close)
  t.match((await gw.admin.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'ready', screening: 'no list imported' })
  const old = await gw.admin.inject({ method: 'POST', url: '/admin/screening/import?name=consolidated.csv&date=2026-01-02', headers: { ...ADMIN, 'content-type': 'text/csv' }, payload: cslCsvText(PARTIES) })
  t.equal(old.statusCode, 200)
  t.equal(old.json().list.stale, true)
  const ready = await gw.admin.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200, 'reported, not taken out of service')
  t.match(ready.json().screening, /^stale: list of 2026-01-02/)
  t.match((await gw.admin.inject({ method: 'GET', url: '/metrics', headers: ADMIN })).body, /^geogate_screening_list_stale 1$/m)
})
