/** A database older than geo.maxAgeDays: warning, metrics, and optionally every location unknown. */
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { GeoService } from '../../src/geo/service.js'
import { Metrics } from '../../src/infra/metrics.js'
import { writeMmdb, type MmdbEntry } from '../helpers/mmdb-writer.js'

const DAY = 86_400_000
const entries: MmdbEntry[] = [{ network: '192.0.2.0/24', data: { country: { iso_code: 'US' } } }]

interface LogLine { level: number, msg: string }

async function gauge (m: Metrics, name: 'geodbStale' | 'geodbAgeDays'): Promise<number[]> {
  return (await m[name].get()).values.map((x) => x.value)
}

t.test('stale database: warning, gauges, lookups still answer when not failing closed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-stale-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = await writeMmdb(join(dir, 'old.mmdb'), entries, { databaseType: 'GeoIP2-Country', buildEpoch: new Date(Date.now() - 50 * DAY) })
  const lines: LogLine[] = []
  const metrics = new Metrics()
  const geo = await GeoService.open({ paths: [path], maxAgeDays: 45, failClosedWhenStale: false, watch: false, metrics, log: pino({ level: 'info' }, { write (s: string) { lines.push(JSON.parse(s) as LogLine) } }) })
  t.teardown(() => geo.close())
  t.equal(geo.stale(), true)
  t.equal(geo.info()[0]?.stale, true)
  t.ok(Math.abs((geo.info()[0]?.ageDays ?? 0) - 50) < 0.01)
  t.ok(lines.some((l) => l.level === 40 && /older than geo.maxAgeDays/.test(l.msg)), 'warning logged')
  t.same(await gauge(metrics, 'geodbStale'), [1])
  const [age] = await gauge(metrics, 'geodbAgeDays')
  t.ok(age !== undefined && age >= 49.99 && age <= 50.01, `age gauge ${String(age)}`)
  t.equal(geo.lookup('192.0.2.1').country, 'US', 'fail-open: still resolves')
})

t.test('failClosedWhenStale: every lookup is unknown until a fresh database is swapped in', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-stale-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = await writeMmdb(join(dir, 'db.mmdb'), entries, { databaseType: 'GeoIP2-Country', buildEpoch: new Date(Date.now() - 46 * DAY) })
  const metrics = new Metrics()
  const geo = await GeoService.open({ paths: [path], maxAgeDays: 45, failClosedWhenStale: true, watch: true, metrics, log: pino({ level: 'silent' }) })
  t.teardown(() => geo.close())
  const g = geo.lookup('192.0.2.1')
  t.match(g, { country: null, subdivisions: [], unknownReason: 'stale', anonymizer: { any: false } })
  t.equal(g.build, geo.info()[0]?.buildEpoch, 'the build of the stale database is still reported')
  geo.lookup('192.0.2.2')
  geo.lookup('203.0.113.1')
  const reloaded = once(geo, 'reload')
  await writeMmdb(path, entries, { databaseType: 'GeoIP2-Country', buildEpoch: new Date(Date.now() - DAY) })
  await reloaded
  t.equal(geo.stale(), false)
  t.equal(geo.lookup('192.0.2.1').country, 'US', 'fresh database: resolves again')
  t.match(geo.lookup('203.0.113.1'), { country: null, unknownReason: 'not_found' })
  geo.lookup('nonsense')
  t.same(await gauge(metrics, 'geodbStale'), [0])
  const unknown = Object.fromEntries((await metrics.geoUnknown.get()).values.map((x) => [x.labels.reason, x.value]))
  t.same(unknown, { stale: 3, not_found: 1, invalid_ip: 1 })
})

t.test('a fresh database is not stale', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-stale-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = await writeMmdb(join(dir, 'db.mmdb'), entries, { databaseType: 'GeoIP2-Country', buildEpoch: new Date(Date.now() - 44 * DAY) })
  const geo = await GeoService.open({ paths: [path], maxAgeDays: 45, failClosedWhenStale: true, watch: false, log: pino({ level: 'silent' }) })
  t.teardown(() => geo.close())
  t.equal(geo.stale(), false)
  t.equal(geo.lookup('192.0.2.1').country, 'US')
})
