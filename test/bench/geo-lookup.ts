/**
 * Lookups per second of the geo stage with City + Anonymous-IP layers.
 *   node --import tsx test/bench/geo-lookup.ts
 * Runs on MaxMind's official test databases when present (tiny: a handful of records), and always on generated
 * databases with many networks (300k City networks over 20k distinct records, 50k Anonymous-IP networks).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import maxmind, { type Response } from 'maxmind'
import pino from 'pino'
import { GeoService } from '../../src/geo/service.js'
import { Metrics } from '../../src/infra/metrics.js'
import { geoip2Record, anonymousIpRecord } from '../helpers/geo-fixtures.js'
import { writeMmdb, type MmdbEntry } from '../helpers/mmdb-writer.js'
import { officialFixturesDir } from '../helpers/official-geodb.js'

const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'JP', 'NL', 'SE', 'UA', 'CU', 'IR', 'KP', 'SY', 'CN', 'IN', 'BR', 'CA', 'AU', 'ES', 'IT', 'PL']

/** Deterministic PRNG so runs compare. */
function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function ipv4 (n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

interface Lookup { lookup: (ip: string) => { country: string | null } }

async function bench (label: string, geo: Lookup, addrs: string[], seconds = 2): Promise<number> {
  for (let i = 0; i < 50_000; i++) geo.lookup(addrs[i % addrs.length] ?? '') // warm up (JIT, decode caches)
  let n = 0
  let sink = 0
  const end = performance.now() + seconds * 1000
  const t0 = performance.now()
  while (performance.now() < end) {
    for (let i = 0; i < 10_000; i++) {
      const g = geo.lookup(addrs[(n + i) % addrs.length] ?? '')
      if (g.country !== null) sink++
    }
    n += 10_000
  }
  const rate = n / ((performance.now() - t0) / 1000)
  process.stdout.write(`${label.padEnd(64)} ${Math.round(rate).toLocaleString('en-US').padStart(12)} lookups/s  (${((sink / n) * 100).toFixed(0)}% resolved)\n`)
  return rate
}

async function main (): Promise<void> {
  const log = pino({ level: 'silent' })
  const open = async (paths: string[]): Promise<GeoService> =>
    await GeoService.open({ paths, maxAgeDays: 100000, failClosedWhenStale: false, watch: false, log, metrics: new Metrics() })
  process.stdout.write(`node ${process.version}, geo lookups (City + Anonymous-IP layers), single thread\n`)

  const official = officialFixturesDir()
  if (official !== null) {
    const geo = await open([join(official, 'GeoIP2-City-Test.mmdb'), join(official, 'GeoIP2-Anonymous-IP-Test.mmdb')])
    const addrs = ['81.2.69.160', '2.125.160.216', '216.160.83.56', '89.160.20.112', '175.16.199.1', '2001:218::1', '1.2.0.1', '10.0.0.1']
    await bench('official test DBs, 8 known addresses', geo, addrs)
    await geo.close()
  } else {
    process.stdout.write('MaxMind test databases absent: official-fixture figure not measured\n')
  }

  const dir = await mkdtemp(join(tmpdir(), 'geogate-bench-'))
  try {
    const r = rng(42)
    const places = Array.from({ length: 20_000 }, (_, i) => geoip2Record({
      country: COUNTRIES[i % COUNTRIES.length] ?? 'US',
      subdivisions: [String(i % 97).padStart(2, '0')],
      registeredCountry: COUNTRIES[(i * 7) % COUNTRIES.length]
    }))
    const city: MmdbEntry[] = []
    for (let i = 0; i < 300_000; i++) { // /24s spread over the IPv4 space, plus IPv6 /48s
      const net = Math.floor(r() * 0xffffff) << 8
      city.push({ network: `${ipv4(net)}/24`, data: places[Math.floor(r() * places.length)] ?? {} })
    }
    for (let i = 0; i < 20_000; i++) city.push({ network: `2001:${(0x1000 + i).toString(16)}::/32`, data: places[i % places.length] ?? {} })
    const anon: MmdbEntry[] = []
    for (let i = 0; i < 50_000; i++) {
      const net = Math.floor(r() * 0xffffff) << 8
      anon.push({ network: `${ipv4(net)}/28`, data: anonymousIpRecord({ vpn: i % 2 === 0, hosting: i % 3 === 0, tor: i % 11 === 0 }) })
    }
    const t0 = performance.now()
    const cityPath = await writeMmdb(join(dir, 'City.mmdb'), city, { databaseType: 'GeoIP2-City', buildEpoch: new Date() })
    const anonPath = await writeMmdb(join(dir, 'Anon.mmdb'), anon, { databaseType: 'GeoIP2-Anonymous-IP', buildEpoch: new Date() })
    const t1 = performance.now()
    const geo = await open([cityPath, anonPath])
    process.stdout.write(`generated DBs written in ${((t1 - t0) / 1000).toFixed(1)} s; opened and verified in ${((performance.now() - t1) / 1000).toFixed(2)} s\n`)
    const inCity = city.slice(0, 300_000).map((e) => (e.network.split('/')[0] ?? '').replace(/\.0$/, '.' + String(1 + Math.floor(r() * 250))))
    const randomV4 = Array.from({ length: 200_000 }, () => ipv4(Math.floor(r() * 0xffffffff)))
    const mixed = inCity.slice(0, 100_000).concat(Array.from({ length: 20_000 }, (_, i) => `2001:${(0x1000 + i).toString(16)}::${i.toString(16)}`))
    await bench('generated, 300k addresses inside City networks', geo, inCity)
    await bench('generated, 200k random IPv4 (mostly unknown)', geo, randomV4)
    await bench('generated, mixed IPv4 + IPv6', geo, mixed)
    await bench('generated, IPv4-mapped IPv6 form', geo, inCity.slice(0, 50_000).map((a) => `::ffff:${a}`))
    // baseline: mmdb-lib's own get() on both files (decode cache of 10k entries, as maxmind.open sets), no normalising
    const readers = [await maxmind.open<Response>(cityPath), await maxmind.open<Response>(anonPath)]
    const raw: Lookup = {
      lookup (ip) {
        let country: string | null = null
        for (const r of readers) {
          const rec = r.get(ip) as { country?: { iso_code?: string } } | null
          country ??= rec?.country?.iso_code ?? null
        }
        return { country }
      }
    }
    await bench('baseline: maxmind reader.get() on both files, City addresses', raw, inCity)
    await geo.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
