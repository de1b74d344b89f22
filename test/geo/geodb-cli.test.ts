/** `geogate geodb info|lookup`, run as the built CLI. */
import t from 'tap'
import { runCli, type CliResult } from '../helpers/process.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { baseConfig } from '../helpers/gateway.js'
import { writeTestGeoDbs, type TestGeoDbs } from '../helpers/geo-fixtures.js'
import { writeMmdb } from '../helpers/mmdb-writer.js'

const geogate = async (...args: string[]): Promise<CliResult> => await runCli(args)

let dir = ''
let dbs: TestGeoDbs
t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'geogate-geocli-'))
  dbs = await writeTestGeoDbs(dir, { buildEpoch: new Date(Date.now() - 10 * 86_400_000) })
})
t.teardown(() => rm(dir, { recursive: true, force: true }))

async function configWith (geo: Record<string, unknown>): Promise<string> {
  const file = join(dir, `geogate-${Math.random().toString(36).slice(2)}.yaml`)
  await writeFile(file, JSON.stringify(baseConfig('http://127.0.0.1:9', { geo })))
  return file
}

t.test('info lists each layer with type, build date, age and staleness', async (t) => {
  const cfg = await configWith({ databases: [dbs.city, dbs.anonymousIp], maxAgeDays: 45 })
  const r = await geogate('geodb', 'info', '--config', cfg)
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  t.match(lines[0], /PATH\s+TYPE\s+BUILD\s+AGE \(days\)\s+STALE/)
  t.match(lines[1], new RegExp(`${dbs.city}\\s+GeoIP2-City\\s+${dbs.buildEpoch.toISOString()}\\s+10\\.0\\s+no`))
  t.match(lines[2], /GeoIP2-Anonymous-IP/)
  const json = await geogate('geodb', 'info', '--config', cfg, '--json')
  const info = JSON.parse(json.stdout) as Array<{ path: string, stale: boolean, ageDays: number }>
  t.same(info.map((i) => i.path), [dbs.city, dbs.anonymousIp])
  t.equal(info[0]?.stale, false)

  const stale = await geogate('geodb', 'info', '--config', await configWith({ databases: [dbs.city], maxAgeDays: 5, failClosedWhenStale: true }))
  t.equal(stale.code, 0)
  t.match(stale.stdout, /STALE/)
  t.match(stale.stderr, /older than geo\.maxAgeDays \(5\); geo\.failClosedWhenStale/)
})

t.test('lookup prints the normalised result as JSON', async (t) => {
  const cfg = await configWith({ databases: [dbs.city, dbs.anonymousIp] })
  const r = await geogate('geodb', 'lookup', '192.0.2.81', '--config', cfg)
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as Record<string, unknown>
  t.match(out, { ip: '192.0.2.81', country: 'UA', subdivisions: ['UA-43'], build: dbs.buildEpoch.toISOString(), anonymizer: { any: false } })
  t.same((out.databases as Array<{ databaseType: string }>).map((d) => d.databaseType), ['GeoIP2-City', 'GeoIP2-Anonymous-IP'])
  const tor = JSON.parse((await geogate('geodb', 'lookup', '2001:db8:7::9', '--config', cfg)).stdout) as Record<string, unknown>
  t.match(tor, { country: 'DE', anonymizer: { tor: true, vpn: true, any: true } })
  const bad = await geogate('geodb', 'lookup', 'not-an-ip', '--config', cfg)
  t.equal(bad.code, 1)
  t.match(JSON.parse(bad.stdout), { unknownReason: 'invalid_ip' })
})

t.test('the embedded default when no databases are configured', async (t) => {
  const r = await geogate('geodb', 'lookup', '175.45.176.1', '--config', await configWith({}))
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout), { country: 'KP', databases: [{ databaseType: 'country ipvAll' }] })
})

t.test('a broken database is refused, naming the file; usage errors exit 2', async (t) => {
  const broken = join(dir, 'broken.mmdb')
  await writeMmdb(broken, [{ network: '192.0.2.0/24', data: { country_code: 'US' } }], { databaseType: 'x', buildEpoch: new Date() })
  await writeFile(broken, 'truncated')
  const r = await geogate('geodb', 'info', '--config', await configWith({ databases: [dbs.city, broken] }))
  t.equal(r.code, 1)
  t.match(r.stderr, `GeoIP database ${broken} refused`)
  t.equal((await geogate('geodb')).code, 2)
  t.equal((await geogate('geodb', 'lookup')).code, 2)
  t.equal((await geogate('geodb', 'frobnicate')).code, 2)
})
