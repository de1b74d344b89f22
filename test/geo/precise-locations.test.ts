/*
 * Locations below the subdivision, on generated GeoIP2-City databases whose networks carry Ukrainian postal codes,
 * GeoNames city ids and coordinates: a restricted postal code, city or polygon is refused while the same oblast
 * outside it is served, and the accuracy radius decides the borderline case.
 */
import t, { type Test } from 'tap'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { typed, writeMmdb, type MmdbMap } from '../helpers/mmdb-writer.js'
import { baseConfig, buildTestGateway, sha, type TestGateway } from '../helpers/gateway.js'

interface Place { ip: string, network: string, city: string, geonameId: number, postal: string, lat: number, lon: number, radiusKm: number }

// Networks from the documentation range 198.51.100.0/24 (RFC 5737); places and codes as MaxMind publishes them for UA-14.
const DONETSK: Place = { ip: '198.51.100.1', network: '198.51.100.0/28', city: 'Donetsk', geonameId: 709717, postal: '83001', lat: 48.0159, lon: 37.8029, radiusKm: 5 }
const KRAMATORSK: Place = { ip: '198.51.100.17', network: '198.51.100.16/28', city: 'Kramatorsk', geonameId: 704617, postal: '84300', lat: 48.7389, lon: 37.5848, radiusKm: 5 }
/** 0.1° (11 km) north of the region's edge, with a 20 km accuracy radius: the circle crosses into it */
const BORDER: Place = { ip: '198.51.100.33', network: '198.51.100.32/28', city: 'Kostiantynivka', geonameId: 704422, postal: '85100', lat: 48.5, lon: 37.7, radiusKm: 20 }

function record (p: Place): MmdbMap {
  const names = (en: string): MmdbMap => ({ en })
  return {
    continent: { code: 'EU', geoname_id: 6255148, names: names('Europe') },
    country: { geoname_id: 690791, iso_code: 'UA', names: names('Ukraine') },
    registered_country: { geoname_id: 690791, iso_code: 'UA', names: names('Ukraine') },
    subdivisions: [{ geoname_id: 709716, iso_code: '14', names: names('Donetsk Oblast') }],
    city: { geoname_id: p.geonameId, names: names(p.city) },
    postal: { code: p.postal },
    location: { accuracy_radius: typed('uint16', p.radiusKm), latitude: typed('double', p.lat), longitude: typed('double', p.lon), time_zone: 'Europe/Kyiv' }
  }
}

/** A region drawn for the test: lat 47.0–48.4, lon 37.0–40.0 (Donetsk inside, Kramatorsk outside). */
const REGION = {
  type: 'FeatureCollection',
  features: [{ type: 'Feature', properties: { name: 'test region' }, geometry: { type: 'Polygon', coordinates: [[[37.0, 47.0], [40.0, 47.0], [40.0, 48.4], [37.0, 48.4], [37.0, 47.0]]] } }]
}

const chat = JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] })

t.test('precise locations', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-precise-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const city = await writeMmdb(join(dir, 'Test-GeoIP2-City.mmdb'), [DONETSK, KRAMATORSK, BORDER].map((p) => ({ network: p.network, data: record(p) })),
    { databaseType: 'GeoIP2-City', buildEpoch: new Date('2026-11-20T00:00:00Z') })
  const regionFile = join(dir, 'region.geojson')
  await writeFile(regionFile, JSON.stringify(REGION))

  const gateway = async (t: Test, places: string[], embargoed: Record<string, unknown> = {}): Promise<TestGateway> => {
    const c = baseConfig()
    const gw = await buildTestGateway({
      ...c,
      geo: { databases: [city], regions: { occupied: regionFile } },
      locations: { tiers: { embargoed: places, tier1: ['US'] }, default: 'tier2', unknown: 'embargoed' },
      tiers: { ...(c.tiers as object), embargoed: { deny: true, ...embargoed } }
    })
    t.teardown(gw.close)
    return gw
  }
  const call = async (gw: TestGateway, p: Place): Promise<number> =>
    (await gw.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: p.ip, headers: { authorization: 'Bearer test-key-tier2' } })).statusCode
  const explain = async (gw: TestGateway, p: Place): Promise<any> =>
    (await gw.admin.inject({ method: 'GET', url: `/admin/explain?ip=${p.ip}&keyId=k2&model=llama-3.1-8b`, headers: { authorization: 'Bearer test-admin' } })).json()

  t.test('the City record reaches the decision: city id, postal code, point and radius', async (t) => {
    const gw = await gateway(t, ['CU'])
    const g = gw.rt.geo.lookup(DONETSK.ip)
    t.same([g.country, g.subdivisions, g.city, g.postalCode, g.location],
      ['UA', ['UA-14'], { geonameId: 709717, name: 'Donetsk' }, '83001', { latitude: 48.0159, longitude: 37.8029, accuracyRadiusKm: 5 }])
    t.same(g.regions, [{ name: 'occupied', inside: true, distanceKm: 0 }])
  })

  t.test('a restricted postal code is refused; the same oblast outside it is served', async (t) => {
    const gw = await gateway(t, ['postal:UA:83*'])
    t.equal(await call(gw, DONETSK), 451)
    t.equal(await call(gw, KRAMATORSK), 200, 'UA-14, another postal code')
    const why = await explain(gw, DONETSK)
    t.same([why.location.source, why.location.postalCode, why.location.city.name, why.rule], ['postal:UA:83001', '83001', 'Donetsk', 'location:embargoed'])
    // the audit record names it too
    const res = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: DONETSK.ip, headers: { authorization: 'Bearer test-key-tier2', 'content-type': 'application/json' }, payload: chat })
    t.equal(res.statusCode, 451)
    await gw.rt.audit.flush()
    const files = (await readdir(join(gw.dir, 'audit'))).filter((f) => f.endsWith('.jsonl') && !f.includes('inflight'))
    const recs = (await Promise.all(files.map(async (f) => await readFile(join(gw.dir, 'audit', f), 'utf8')))).join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l))
    const rec = recs.find((r) => r.requestId === res.headers['x-request-id'])
    t.same([rec?.subdivision, rec?.postalCode, rec?.city, rec?.locationSource, rec?.rule], ['UA-14', '83001', 709717, 'postal:UA:83001', 'location:embargoed'])
  })

  t.test('a restricted city (GeoNames id) is refused; another city of the oblast is served', async (t) => {
    const gw = await gateway(t, ['city:709717'])
    t.equal(await call(gw, DONETSK), 451)
    t.equal(await call(gw, KRAMATORSK), 200)
    t.equal((await explain(gw, DONETSK)).location.source, 'city:709717')
  })

  t.test('a restricted polygon is refused; the same oblast outside it is served', async (t) => {
    const gw = await gateway(t, ['region:occupied'])
    t.equal(await call(gw, DONETSK), 451)
    t.equal(await call(gw, KRAMATORSK), 200)
    t.equal((await explain(gw, DONETSK)).location.source, 'region:occupied')
  })

  t.test('the accuracy radius decides the borderline case', async (t) => {
    const inside = await gateway(t, ['region:occupied'])
    t.equal(await call(inside, BORDER), 451, 'default (inside): a circle crossing into the region counts as in it')
    const why = await explain(inside, BORDER)
    t.equal(why.location.source, 'region:occupied~11.1km')
    t.same(why.location.regions, [{ name: 'occupied', inside: false, distanceKm: 11.1 }])
    const center = await gateway(t, ['region:occupied'], { accuracyRadius: 'center' })
    t.equal(await call(center, BORDER), 200, 'accuracyRadius: center — only the point counts')
    t.equal(await call(center, DONETSK), 451, 'a point inside is inside either way')
  })

  t.test('check-config names a bad place or an unknown region', async (t) => {
    const { parseConfig, ConfigError } = await import('../../src/config/load.js')
    const c = baseConfig()
    try {
      parseConfig({ ...c, locations: { tiers: { embargoed: ['region:nowhere', 'postal:ua:1', 'city:abc'] }, default: 'tier2', unknown: 'embargoed' }, tiers: { ...(c.tiers as object) } })
      t.fail('refused')
    } catch (err) {
      t.ok(err instanceof ConfigError)
      const msgs = (err as InstanceType<typeof ConfigError>).issues.map((i) => i.message)
      t.match(msgs, [/no region "nowhere" in geo.regions/, /postal:<CC>:<code>/, /city:<GeoNames id>/])
    }
  })
})

t.test('a key\'s declared country is policy: countryMismatch alert, review, deny', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-mismatch-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const city = await writeMmdb(join(dir, 'City.mmdb'), [{ network: DONETSK.network, data: record(KRAMATORSK) }], { databaseType: 'GeoIP2-City', buildEpoch: new Date('2026-11-20T00:00:00Z') })
  const gw = async (t: Test, action: string): Promise<TestGateway> => {
    const c = baseConfig()
    const g = await buildTestGateway({
      ...c,
      geo: { databases: [city] },
      keys: [{ id: 'de-key', sha256: sha('de-key'), org: 'Declared DE', tier: 'tier2', country: 'DE' }],
      tiers: { ...(c.tiers as object), tier2: { models: ['llama-*'], capabilities: ['chat'], countryMismatch: action } }
    })
    t.teardown(g.close)
    return g
  }
  const call = async (g: TestGateway): Promise<{ statusCode: number, json: () => any }> =>
    await g.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: DONETSK.ip, headers: { authorization: 'Bearer de-key' } })

  t.test('alert: served, counted and logged', async (t) => {
    const g = await gw(t, 'alert')
    t.equal((await call(g)).statusCode, 200)
    t.match((await g.admin.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer test-admin' } })).body, /^geogate_country_mismatch_total\{action="alert"\} 1$/m)
  })
  t.test('deny: 403 party_restricted', async (t) => {
    const g = await gw(t, 'deny')
    const res = await call(g)
    t.same([res.statusCode, res.json().error.code], [403, 'party_restricted'])
  })
  t.test('review: refused, and the key goes to review (audited)', async (t) => {
    const g = await gw(t, 'review')
    t.equal((await call(g)).statusCode, 403)
    const { waitFor } = await import('../helpers/ops.js')
    await waitFor(() => g.rt.live.config().keys.find((k) => k.id === 'de-key')?.status === 'review', 1000, 'key in review')
    const why = await g.admin.inject({ method: 'GET', url: `/admin/explain?ip=${DONETSK.ip}&keyId=de-key&model=llama-3.1-8b`, headers: { authorization: 'Bearer test-admin' } })
    t.same([why.json().rule, why.json().party.screening.reason, why.json().party.screening.detail], ['party:review', 'country-mismatch', 'declared DE, called from UA'])
  })
})
