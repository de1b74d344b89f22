/** MaxMind's official test databases: known addresses resolve as their source JSON says; broken files are refused. */
import t from 'tap'
import { join } from 'node:path'
import pino from 'pino'
import { GeoService, loadLayer, GeoDatabaseError } from '../../src/geo/service.js'
import { networkBits } from '../helpers/mmdb-writer.js'
import { readSource, requireOfficialFixtures } from '../helpers/official-geodb.js'

const log = pino({ level: 'silent' })

async function open (paths: string[]): Promise<GeoService> {
  return await GeoService.open({ paths, maxAgeDays: 100000, failClosedWhenStale: false, watch: false, log })
}

type Rec = Record<string, unknown>
const iso = (v: unknown): string | null => (typeof v === 'object' && v !== null && typeof (v as Rec).iso_code === 'string' ? (v as Rec).iso_code as string : null)

/** First address of a network as text, and the source record that answers for it (the last entry containing it). */
function cases (source: Array<[string, Rec]>): Array<{ ip: string, rec: Rec }> {
  const nets = source.map(([n, rec]) => ({ n, rec, ...networkBits(n, 128) }))
  const contains = (outer: typeof nets[number], bits: Uint8Array): boolean => {
    for (let i = 0; i < outer.prefix; i++) if (outer.bits[i] !== bits[i]) return false
    return true
  }
  return nets.map((net) => {
    let rec = net.rec
    for (const other of nets) if (contains(other, net.bits)) rec = other.rec // later entries win, as the writer stores them
    return { ip: net.n.split('/')[0] ?? '', rec }
  })
}

t.test('City and Country: country, subdivisions, registered and represented country as the source JSON says', async (t) => {
  const dir = requireOfficialFixtures(t, 'City/Country lookups against MaxMind source JSON')
  if (dir === null) return
  for (const name of ['GeoIP2-City-Test', 'GeoIP2-Country-Test']) {
    const geo = await open([join(dir, `${name}.mmdb`)])
    t.teardown(() => geo.close())
    const wrong: string[] = []
    const all = cases(readSource(dir, `${name}.source.json`))
    for (const { ip, rec } of all) {
      const country = iso(rec.country)
      const want = {
        country,
        subdivisions: country === null ? [] : (Array.isArray(rec.subdivisions) ? rec.subdivisions : []).map((s) => `${country}-${iso(s) ?? ''}`),
        registeredCountry: iso(rec.registered_country),
        representedCountry: iso(rec.represented_country)
      }
      const g = geo.lookup(ip)
      const got = { country: g.country, subdivisions: g.subdivisions, registeredCountry: g.registeredCountry, representedCountry: g.representedCountry }
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${ip}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`)
    }
    t.same(wrong, [], `${name}: ${all.length} networks agree with the source JSON`)
  }
})

t.test('City: plain spot checks, IPv4, IPv4 in IPv6 forms, IPv6', async (t) => {
  const dir = requireOfficialFixtures(t, 'City spot checks')
  if (dir === null) return
  const geo = await open([join(dir, 'GeoIP2-City-Test.mmdb')])
  t.teardown(() => geo.close())
  t.match(geo.lookup('2.125.160.216'), { country: 'GB', subdivisions: ['GB-ENG', 'GB-WBK'], registeredCountry: 'FR' })
  t.match(geo.lookup('::ffff:2.125.160.216'), { country: 'GB', subdivisions: ['GB-ENG', 'GB-WBK'] }, 'IPv4-mapped')
  t.match(geo.lookup('::ffff:027d:a0d8'), { country: 'GB' }, 'IPv4-mapped, hex form')
  t.match(geo.lookup('216.160.83.56'), { country: 'US', subdivisions: ['US-WA'], registeredCountry: 'GB' })
  t.match(geo.lookup('202.196.224.1'), { representedCountry: 'US' })
  t.match(geo.lookup('2001:218::1'), { country: 'JP' })
  t.match(geo.lookup('2001:480:10::1'), { country: 'US', subdivisions: ['US-CA'] })
  t.equal(geo.lookup('2001:218::1').build, '2026-02-04T22:49:29.000Z', 'build date of the database rides on every answer')
  t.match(geo.lookup('10.0.0.1'), { country: null, unknownReason: 'not_found' })
  t.match(geo.lookup('not an ip'), { country: null, unknownReason: 'invalid_ip' })
})

t.test('Anonymous-IP: flags as the source JSON says, layered under City', async (t) => {
  const dir = requireOfficialFixtures(t, 'Anonymous-IP flags against MaxMind source JSON')
  if (dir === null) return
  const geo = await open([join(dir, 'GeoIP2-City-Test.mmdb'), join(dir, 'GeoIP2-Anonymous-IP-Test.mmdb')])
  t.teardown(() => geo.close())
  const wrong: string[] = []
  const all = cases(readSource(dir, 'GeoIP2-Anonymous-IP-Test.source.json'))
  for (const { ip, rec } of all) {
    const want = {
      vpn: rec.is_anonymous_vpn === true,
      tor: rec.is_tor_exit_node === true,
      hosting: rec.is_hosting_provider === true,
      publicProxy: rec.is_public_proxy === true,
      residentialProxy: rec.is_residential_proxy === true,
      any: true
    }
    const got = geo.lookup(ip).anonymizer
    if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${ip}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`)
  }
  t.same(wrong, [], `${all.length} anonymizer networks agree`)
  const london = geo.lookup('81.2.69.160')
  t.match(london, { country: 'GB', subdivisions: ['GB-ENG'], anonymizer: { vpn: true, tor: true, hosting: true, publicProxy: true, residentialProxy: true, any: true } }, 'fields from both layers')
  t.match(geo.lookup('1.2.0.1'), { country: null, anonymizer: { vpn: true, any: true } }, 'anonymizer without a known place')
  t.match(geo.lookup('2.125.160.216'), { country: 'GB', anonymizer: { any: false } })
  t.equal(geo.info().length, 2)
})

t.test('Enterprise and GeoLite2 databases read with the same schema', async (t) => {
  const dir = requireOfficialFixtures(t, 'Enterprise / GeoLite2 lookups')
  if (dir === null) return
  const geo = await open([join(dir, 'GeoIP2-Enterprise-Test.mmdb')])
  const lite = await open([join(dir, 'GeoLite2-City-Test.mmdb')])
  t.teardown(async () => { await geo.close(); await lite.close() })
  t.match(geo.lookup('81.2.69.160'), { country: 'GB', subdivisions: ['GB-ENG'] })
  t.match(lite.lookup('216.160.83.56'), { country: 'US', subdivisions: ['US-WA'] })
  t.equal(geo.info()[0]?.databaseType, 'GeoIP2-Enterprise')
})

t.test('broken and truncated files are refused with an error naming the file', async (t) => {
  const dir = requireOfficialFixtures(t, 'that MaxMind\'s broken test databases are refused')
  if (dir === null) return
  const broken: Array<[string, RegExp]> = [
    ['GeoIP2-City-Test-Broken-Double-Format.mmdb', /double of size 5/],
    ['GeoIP2-City-Test-Invalid-Node-Count.mmdb', /node_count 100000/],
    ['MaxMind-DB-test-broken-pointers-24.mmdb', /outside the data section/],
    ['MaxMind-DB-test-broken-search-tree-24.mmdb', /search tree/]
  ]
  for (const [file, why] of broken) {
    const path = join(dir, file)
    const err = await loadLayer(path).then(() => null, (e: unknown) => e)
    t.ok(err instanceof GeoDatabaseError, `${file} refused`)
    if (err instanceof GeoDatabaseError) {
      t.equal(err.path, path)
      t.match(err.message, `GeoIP database ${path} refused`)
      t.match(err.message, why)
    }
    await t.rejects(open([join(dir, 'GeoIP2-City-Test.mmdb'), path]), { name: 'GeoDatabaseError', path }, `${file} as a second layer fails the start`)
  }
  await t.rejects(open([join(dir, 'does-not-exist.mmdb')]), { message: /does-not-exist\.mmdb refused: cannot read it/ })
})
