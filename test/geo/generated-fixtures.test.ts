/** Places MaxMind's fixtures lack: embargoed countries, subdivisions, anonymizers; layering; flat schema; IPv6. */
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { GeoService, embeddedDatabasePath } from '../../src/geo/service.js'
import { writeTestGeoDbs, type TestGeoDbs } from '../helpers/geo-fixtures.js'
import { writeMmdb } from '../helpers/mmdb-writer.js'

const log = pino({ level: 'silent' })

async function open (paths: string[]): Promise<GeoService> {
  return await GeoService.open({ paths, maxAgeDays: 100000, failClosedWhenStale: false, watch: false, log })
}

let dir = ''
let dbs: TestGeoDbs
t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'geogate-geo-'))
  dbs = await writeTestGeoDbs(dir)
})
t.teardown(() => rm(dir, { recursive: true, force: true }))

t.test('City + Anonymous-IP: every known address resolves as its table row says', async (t) => {
  const geo = await open([dbs.city, dbs.anonymousIp])
  t.teardown(() => geo.close())
  for (const k of dbs.known) {
    const g = geo.lookup(k.ip)
    const { label, ip, anonymizer, ...place } = k
    const any = Object.values(anonymizer).some(Boolean)
    t.same({ country: g.country, subdivisions: g.subdivisions, registeredCountry: g.registeredCountry, representedCountry: g.representedCountry }, place, `${label} ${ip}`)
    t.same(g.anonymizer, { ...anonymizer, any }, `${label} anonymizer flags`)
    t.equal(g.build, dbs.buildEpoch.toISOString())
  }
})

t.test('embargoed countries and the occupied regions of Ukraine, as full ISO 3166-2', async (t) => {
  const geo = await open([dbs.city])
  t.teardown(() => geo.close())
  t.equal(geo.lookup('192.0.2.17').country, 'CU')
  t.equal(geo.lookup('192.0.2.33').country, 'IR')
  t.equal(geo.lookup('192.0.2.49').country, 'KP')
  t.equal(geo.lookup('192.0.2.65').country, 'SY')
  t.same(geo.lookup('192.0.2.81').subdivisions, ['UA-43'])
  t.same(geo.lookup('192.0.2.97').subdivisions, ['UA-14'])
  t.same(geo.lookup('192.0.2.113').subdivisions, ['UA-09'])
  t.same(geo.lookup('192.0.2.129').subdivisions, ['UA-30'])
  t.same(geo.lookup('192.0.2.1').subdivisions, ['US-CA'])
  t.same(geo.lookup('192.0.2.177').subdivisions, ['FR-IDF', 'FR-75'], 'largest first')
  t.same(geo.lookup('2001:db8:43::5').subdivisions, ['UA-43'], 'IPv6')
  t.same(geo.lookup('::ffff:192.0.2.81').subdivisions, ['UA-43'], 'IPv4-mapped')
})

t.test('layering: first layer that knows a field wins; flags are OR-ed; order matters', async (t) => {
  // a second City-shaped layer that disagrees about 192.0.2.17 and knows 203.0.113.7
  const other = await writeMmdb(join(dir, 'other.mmdb'), [
    { network: '192.0.2.16/28', data: { country: { iso_code: 'ES' }, subdivisions: [{ iso_code: 'MD' }] } },
    { network: '192.0.2.128/28', data: { country: { iso_code: 'UA' }, subdivisions: [{ iso_code: '32' }] } },
    { network: '203.0.113.0/24', data: { country: { iso_code: 'IT' }, is_anonymous_vpn: true } }
  ], { databaseType: 'Other-City', buildEpoch: new Date('2026-01-01T00:00:00Z') })
  const flat = await open([dbs.flat, dbs.city])
  const geo = await open([dbs.city, other])
  const rev = await open([other, dbs.city])
  t.teardown(async () => { await geo.close(); await rev.close(); await flat.close() })
  t.match(geo.lookup('192.0.2.17'), { country: 'CU', subdivisions: [] }, 'first layer wins the country; subdivisions of another country are not mixed in')
  t.match(rev.lookup('192.0.2.17'), { country: 'ES', subdivisions: ['ES-MD'] })
  t.match(geo.lookup('192.0.2.129'), { country: 'UA', subdivisions: ['UA-30'] })
  t.match(geo.lookup('203.0.113.7'), { country: 'IT', anonymizer: { vpn: true, any: true } }, 'a later layer fills what earlier ones lack')
  t.equal(geo.lookup('192.0.2.1').build, '2026-01-01T00:00:00.000Z', 'build is the oldest layer consulted')
  t.match(flat.lookup('192.0.2.81'), { country: 'UA', subdivisions: ['UA-43'] }, 'flat country layer first, subdivisions from the City layer agreeing on the country')
})

t.test('flat country_code schema', async (t) => {
  const geo = await open([dbs.flat])
  t.teardown(() => geo.close())
  t.same(geo.lookup('192.0.2.33'), {
    country: 'IR', subdivisions: [], registeredCountry: null, representedCountry: null,
    anonymizer: { vpn: false, tor: false, hosting: false, publicProxy: false, residentialProxy: false, any: false },
    build: dbs.buildEpoch.toISOString()
  })
  t.equal(geo.lookup('2001:db8:98::1').country, 'IR')
  t.equal(geo.lookup('::ffff:192.0.2.33').country, 'IR')
  t.equal(geo.lookup('203.0.113.7').country, null)
})

t.test('codes that are not countries resolve as unknown', async (t) => {
  const p = await writeMmdb(join(dir, 'odd.mmdb'), [
    { network: '192.0.2.0/25', data: { country_code: 'ZZ' } },
    { network: '192.0.2.128/25', data: { country_code: 'de' } },
    { network: '198.51.100.0/24', data: { country: { iso_code: 'EU' } } }
  ], { databaseType: 'odd', buildEpoch: new Date('2026-01-01T00:00:00Z') })
  const geo = await open([p])
  t.teardown(() => geo.close())
  t.equal(geo.lookup('192.0.2.1').country, null)
  t.equal(geo.lookup('192.0.2.200').country, 'DE')
  t.equal(geo.lookup('198.51.100.1').country, null)
})

t.test('IPv4-only databases never answer for IPv6 addresses', async (t) => {
  const p = await writeMmdb(join(dir, 'v4.mmdb'), [{ network: '0.0.0.0/1', data: { country_code: 'US' } }, { network: '128.0.0.0/1', data: { country_code: 'FR' } }],
    { databaseType: 'v4-only', ipVersion: 4, buildEpoch: new Date('2026-01-01T00:00:00Z') })
  const geo = await open([p])
  t.teardown(() => geo.close())
  t.equal(geo.lookup('1.2.3.4').country, 'US')
  t.equal(geo.lookup('::ffff:200.1.1.1').country, 'FR')
  t.equal(geo.lookup('2001:db8::1').country, null)
  t.equal(geo.lookup('::1').country, null)
})

t.test('the embedded default opens, verifies and answers', async (t) => {
  const geo = await open([embeddedDatabasePath()])
  t.teardown(() => geo.close())
  const [info] = geo.info()
  t.equal(info?.databaseType, 'country ipvAll')
  t.equal(info?.buildEpoch, '2026-06-17T19:51:40.000Z', 'README states this build date; update both together')
  t.equal(geo.lookup('175.45.176.1').country, 'KP')
  t.equal(geo.lookup('::ffff:175.45.176.1').country, 'KP', 'the embedded database has no ::ffff:0:0/96 alias; lookups map it')
  t.equal(geo.lookup('2001:4860:4860::8888').country, 'US')
  t.equal(geo.lookup('127.0.0.1').country, null)
})
