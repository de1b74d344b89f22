/** Files are watched and swapped atomically; a broken replacement leaves the old database in service. */
import t from 'tap'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile, rename, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { GeoService, type ReloadEvent } from '../../src/geo/service.js'
import { Metrics } from '../../src/infra/metrics.js'
import { buildMmdb, writeMmdb, type MmdbEntry } from '../helpers/mmdb-writer.js'

interface LogLine { level: number, msg: string, file?: string, reason?: string }

function capture (): { log: pino.Logger, lines: LogLine[] } {
  const lines: LogLine[] = []
  const log = pino({ level: 'info' }, { write (s: string) { lines.push(JSON.parse(s) as LogLine) } })
  return { log, lines }
}

const v = (cc: string): MmdbEntry[] => [{ network: '192.0.2.0/24', data: { country: { iso_code: cc } } }]
const opts = (build: string) => ({ databaseType: 'GeoIP2-Country', buildEpoch: new Date(build) })

async function nextReload (geo: GeoService): Promise<ReloadEvent> {
  const [ev] = await once(geo, 'reload') as [ReloadEvent]
  return ev
}

t.test('a new file renamed over the old one is swapped in', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-swap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = await writeMmdb(join(dir, 'GeoIP2-Country.mmdb'), v('CU'), opts('2026-11-01T00:00:00Z'))
  const metrics = new Metrics()
  const { log, lines } = capture()
  const geo = await GeoService.open({ paths: [path], maxAgeDays: 100000, failClosedWhenStale: false, watch: true, log, metrics })
  t.teardown(() => geo.close())
  t.equal(geo.lookup('192.0.2.1').country, 'CU')

  let reloaded = nextReload(geo)
  await writeMmdb(path, v('DE'), opts('2026-11-20T00:00:00Z')) // temp file + rename, as geoipupdate does
  let ev = await reloaded
  t.match(ev, { path, ok: true, build: '2026-11-20T00:00:00.000Z' })
  t.equal(geo.lookup('192.0.2.1').country, 'DE')
  t.equal(geo.lookup('192.0.2.1').build, '2026-11-20T00:00:00.000Z')
  t.equal(geo.info()[0]?.buildEpoch, '2026-11-20T00:00:00.000Z')
  t.ok(lines.some((l) => l.msg === 'GeoIP database reloaded' && l.file === path))

  // a truncated replacement is refused; the old database keeps answering
  reloaded = nextReload(geo)
  const good = buildMmdb(v('FR'), opts('2026-11-25T00:00:00Z'))
  await writeFile(join(dir, 'incoming.tmp'), good.subarray(0, good.length - 40))
  await rename(join(dir, 'incoming.tmp'), path)
  ev = await reloaded
  t.equal(ev.ok, false)
  if (!ev.ok) {
    t.equal(ev.error.path, path)
    t.match(ev.error.message, `GeoIP database ${path} refused`)
  }
  t.equal(geo.lookup('192.0.2.1').country, 'DE', 'old database still in service')
  const err = lines.find((l) => l.level === 50)
  t.ok(err, 'an error is logged')
  t.equal(err?.file, path)
  t.match(err?.msg ?? '', /stays in service/)
  t.same((await metrics.geodbReloads.get()).values.map((x) => [x.labels.result, x.value]).sort(), [['error', 1], ['ok', 1]])

  // garbage that is not an MMDB at all
  reloaded = nextReload(geo)
  await writeFile(join(dir, 'incoming.tmp'), 'this is not a database')
  await rename(join(dir, 'incoming.tmp'), path)
  ev = await reloaded
  t.equal(ev.ok, false)
  t.equal(geo.lookup('192.0.2.1').country, 'DE')

  // then a good one is picked up again
  reloaded = nextReload(geo)
  await writeMmdb(path, v('FR'), opts('2026-11-25T00:00:00Z'))
  ev = await reloaded
  t.equal(ev.ok, true)
  t.equal(geo.lookup('192.0.2.1').country, 'FR')

  // the file vanishing (mid-update, or removed) keeps the loaded copy in service
  await unlink(path)
  await geo.checkForChanges()
  t.equal(geo.lookup('192.0.2.1').country, 'FR')
})

t.test('an in-place rewrite (not atomic) ends with the new database in service', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-swap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = await writeMmdb(join(dir, 'db.mmdb'), v('CU'), opts('2026-11-01T00:00:00Z'))
  const geo = await GeoService.open({ paths: [path], maxAgeDays: 100000, failClosedWhenStale: false, watch: true, log: pino({ level: 'silent' }) })
  t.teardown(() => geo.close())
  const seen: ReloadEvent[] = []
  const done = new Promise<void>((resolve) => {
    geo.on('reload', (ev: ReloadEvent) => {
      seen.push(ev)
      if (ev.ok && ev.build === '2026-11-22T00:00:00.000Z') resolve()
    })
  })
  await writeFile(path, buildMmdb(v('SE'), opts('2026-11-22T00:00:00Z')))
  await done
  t.equal(geo.lookup('192.0.2.1').country, 'SE')
  t.ok(seen.every((e) => e.ok || e.path === path), 'any intermediate refusal names the file')
})

t.test('lookups during swaps always see one whole database', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-swap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const a = await writeMmdb(join(dir, 'a.mmdb'), v('CU'), opts('2026-11-01T00:00:00Z'))
  const b = await writeMmdb(join(dir, 'b.mmdb'), [{ network: '192.0.2.0/24', data: { is_anonymous_vpn: true } }], { databaseType: 'GeoIP2-Anonymous-IP', buildEpoch: new Date('2026-11-01T00:00:00Z') })
  const geo = await GeoService.open({ paths: [a, b], maxAgeDays: 100000, failClosedWhenStale: false, watch: false, log: pino({ level: 'silent' }) })
  t.teardown(() => geo.close())
  const answers = new Set<string>()
  for (const cc of ['DE', 'FR', 'SE']) {
    await writeMmdb(a, v(cc), opts('2026-11-02T00:00:00Z'))
    let swapped = false
    void nextReload(geo).then(() => { swapped = true })
    const checking = geo.checkForChanges()
    // keep looking up while the reload is verified off the request path
    while (!swapped) {
      const g = geo.lookup('192.0.2.1')
      answers.add(`${g.country ?? 'null'}:${String(g.anonymizer.vpn)}`)
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    await checking
    t.equal(geo.lookup('192.0.2.1').country, cc)
  }
  t.ok([...answers].every((x) => x.endsWith(':true') && /^(CU|DE|FR|SE):/.test(x)), `every answer whole: ${[...answers].join(' ')}`)
})
