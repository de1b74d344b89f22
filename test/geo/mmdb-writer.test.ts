import t from 'tap'
import { mkdtemp, rm, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import maxmind, { Reader, type Response } from 'maxmind'
import { buildMmdb, typed, writeMmdb, type MmdbEntry, type MmdbMap } from '../helpers/mmdb-writer.js'
import { writeTestGeoDbs } from '../helpers/geo-fixtures.js'
import { readSource, requireOfficialFixtures } from '../helpers/official-geodb.js'

const epoch = new Date('2026-10-01T12:00:00Z')

function reader (buf: Buffer): Reader<Response> {
  return new Reader<Response>(buf)
}

t.test('metadata round-trips', async (t) => {
  const r = reader(buildMmdb([{ network: '1.2.3.0/24', data: { a: 'b' } }], { databaseType: 'Test-Type', buildEpoch: epoch, languages: ['en', 'de'], description: { en: 'hello' } }))
  t.equal(r.metadata.databaseType, 'Test-Type')
  t.equal(r.metadata.buildEpoch.toISOString(), epoch.toISOString())
  t.equal(r.metadata.ipVersion, 6)
  t.equal(r.metadata.binaryFormatMajorVersion, 2)
  t.same(r.metadata.languages, ['en', 'de'])
  t.same(r.metadata.description, { en: 'hello' })
})

t.test('every data type decodes as written', async (t) => {
  const long = 'x'.repeat(300)
  const longer = 'y'.repeat(70000)
  const data: MmdbMap = {
    s: 'héllo', empty: '', long, longer, t: true, f: false, u32: 4000000000, zero: 0, neg: -5,
    d: 3.25, dd: typed('double', 2), fl: typed('float', 1.5), u16: typed('uint16', 65535), i32: typed('int32', -2147483648),
    u64: typed('uint64', 18446744073709551615n), u128: typed('uint128', (1n << 127n) + 5n), bytes: Buffer.from([0, 1, 255]),
    arr: [1, 'two', [3], { four: 4 }], nested: { a: { b: { c: 'deep' } } },
    many: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i]))
  }
  for (const recordSize of [24, 28, 32] as const) {
    const r = reader(buildMmdb([{ network: '10.0.0.0/8', data }], { databaseType: 'T', buildEpoch: epoch, recordSize }))
    t.equal(r.metadata.recordSize, recordSize)
    const got = r.get('10.1.2.3') as Record<string, unknown>
    t.same({ ...got, bytes: undefined }, { ...data, dd: 2, fl: 1.5, u16: 65535, i32: -2147483648, u64: 18446744073709551615n, u128: (1n << 127n) + 5n, bytes: undefined }, `record size ${recordSize}`)
    t.same([...(got.bytes as Buffer)], [0, 1, 255])
    t.equal(r.get('11.0.0.0'), null)
  }
})

t.test('IPv4 lives at ::/96 in an IPv6 tree, aliased at ::ffff:0:0/96 and 2002::/16', async (t) => {
  const r = reader(buildMmdb([
    { network: '192.0.2.0/24', data: { v: 'four' } },
    { network: '2001:db8::/32', data: { v: 'six' } }
  ], { databaseType: 'T', buildEpoch: epoch }))
  t.same(r.get('192.0.2.200'), { v: 'four' })
  t.same(r.get('::192.0.2.200'), { v: 'four' })
  t.same(r.get('::ffff:192.0.2.200'), { v: 'four' })
  t.same(r.get('2002:c000:0201::1'), { v: 'four' }, '6to4 of 192.0.2.1')
  t.same(r.get('2001:db8:1::1'), { v: 'six' })
  t.equal(r.get('2001:db9::1'), null)
  t.equal(r.get('192.0.3.1'), null)
  const noAlias = reader(buildMmdb([{ network: '192.0.2.0/24', data: { v: 'four' } }], { databaseType: 'T', buildEpoch: epoch, ipv4Aliases: false }))
  t.equal(noAlias.get('::ffff:192.0.2.1'), null)
  t.same(noAlias.get('192.0.2.1'), { v: 'four' })
})

t.test('IPv4-only trees, and later networks override earlier ones', async (t) => {
  const r = reader(buildMmdb([
    { network: '10.0.0.0/8', data: { v: 'wide' } },
    { network: '10.1.0.0/16', data: { v: 'narrow' } },
    { network: '10.1.2.3/32', data: { v: 'host' } }
  ], { databaseType: 'T', ipVersion: 4, buildEpoch: epoch }))
  t.equal(r.metadata.ipVersion, 4)
  t.same(r.get('10.2.0.0'), { v: 'wide' })
  t.same(r.get('10.1.9.9'), { v: 'narrow' })
  t.same(r.get('10.1.2.3'), { v: 'host' })
  t.same(r.get('10.1.2.4'), { v: 'narrow' })
  t.same(r.getWithPrefixLength('10.1.2.3')[1], 32)
  t.throws(() => buildMmdb([{ network: '2001:db8::/32', data: {} }], { databaseType: 'T', ipVersion: 4, buildEpoch: epoch }), /IPv6 network/)
})

t.test('writeTestGeoDbs files open with maxmind.open and hold the table', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-mmdbw-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const dbs = await writeTestGeoDbs(dir)
  const city = await maxmind.open<Response>(dbs.city)
  const anon = await maxmind.open<Response>(dbs.anonymousIp)
  const flat = await maxmind.open<Response>(dbs.flat)
  t.equal(city.metadata.databaseType, 'GeoIP2-City')
  t.equal(city.metadata.buildEpoch.toISOString(), dbs.buildEpoch.toISOString())
  const crimea = city.get('192.0.2.81') as { country: { iso_code: string }, subdivisions: Array<{ iso_code: string }> }
  t.equal(crimea.country.iso_code, 'UA')
  t.equal(crimea.subdivisions[0]?.iso_code, '43')
  t.same(anon.get('198.51.100.17'), { is_anonymous: true, is_tor_exit_node: true })
  t.same(flat.get('192.0.2.33'), { country_code: 'IR' })
  t.same(flat.get('2001:db8:98::1'), { country_code: 'IR' })
  t.equal(city.get('203.0.113.7'), null)
})

t.test('rebuilding MaxMind\'s test databases from their source JSON gives the same answers', async (t) => {
  const dir = requireOfficialFixtures(t, 'that this writer reproduces the official City, Country and Anonymous-IP test databases')
  if (dir === null) return
  for (const name of ['GeoIP2-City-Test', 'GeoIP2-Country-Test', 'GeoIP2-Anonymous-IP-Test']) {
    const official = reader(await readFile(join(dir, `${name}.mmdb`)))
    const source = readSource(dir, `${name}.source.json`)
    const entries: MmdbEntry[] = source.map(([network, rec]) => ({ network, data: rec as MmdbMap }))
    const mine = reader(buildMmdb(entries, { databaseType: official.metadata.databaseType, buildEpoch: official.metadata.buildEpoch }))
    const differ: string[] = []
    for (const [network] of source) {
      const first = network.split('/')[0] ?? ''
            if (JSON.stringify(mine.get(first)) !== JSON.stringify(official.get(first))) differ.push(first)
    }
    t.same(differ, [], `${name}: ${source.length} networks compared`)
  }
})
