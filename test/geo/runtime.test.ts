/** The geo service as the gateway runs it: configured layers, a broken file stops the start, metrics exported. */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { baseConfig, buildTestGateway } from '../helpers/gateway.js'
import { writeTestGeoDbs, type TestGeoDbs } from '../helpers/geo-fixtures.js'

let dir = ''
let dbs: TestGeoDbs
t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'geogate-geort-'))
  dbs = await writeTestGeoDbs(dir, { buildEpoch: new Date(Date.now() - 60 * 86_400_000) })
})
t.teardown(() => rm(dir, { recursive: true, force: true }))

t.test('configured layers serve the gateway; staleness and unknown lookups reach /metrics', async (t) => {
  const gw = await buildTestGateway(baseConfig(undefined, { geo: { databases: [dbs.city, dbs.anonymousIp], maxAgeDays: 45 } }))
  t.teardown(() => gw.close())
  t.match(gw.rt.geo.lookup('192.0.2.81'), { country: 'UA', subdivisions: ['UA-43'], build: dbs.buildEpoch.toISOString() })
  t.match(gw.rt.geo.lookup('198.51.100.17'), { country: 'DE', anonymizer: { tor: true } })
  t.same(gw.rt.geo.info().map((i) => i.databaseType), ['GeoIP2-City', 'GeoIP2-Anonymous-IP'])
  t.equal(gw.rt.geo.stale(), true)
  gw.rt.geo.lookup('203.0.113.9')
  const res = await gw.admin.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer test-auditor' } })
  t.equal(res.statusCode, 200)
  t.match(res.body, /^geogate_geodb_stale 1$/m)
  t.match(res.body, /^geogate_geodb_age_days\{database="GeoIP2-City",file="Test-GeoIP2-City.mmdb"\} 60$/m)
  t.match(res.body, /^geogate_geo_unknown_location_total\{reason="not_found"\} 1$/m)
})

t.test('a broken configured database stops the start, naming the file', async (t) => {
  const broken = join(dir, 'GeoIP2-Anonymous-IP-broken.mmdb')
  await writeFile(broken, Buffer.alloc(4096, 7))
  await t.rejects(buildTestGateway(baseConfig(undefined, { geo: { databases: [dbs.city, broken] } })),
    { name: 'GeoDatabaseError', path: broken, message: new RegExp(`GeoIP database ${broken} refused: not a valid MaxMind DB file`) })
  await t.rejects(buildTestGateway(baseConfig(undefined, { geo: { databases: [join(dir, 'missing.mmdb')] } })),
    { message: /missing\.mmdb refused: cannot read it/ })
})

t.test('a start that fails after the databases opened still exits (file watchers closed)', async (t) => {
  const notDir = join(dir, 'not-a-directory')
  await writeFile(notDir, 'x')
  const cfg = join(dir, 'failing-start.yaml')
  await writeFile(cfg, JSON.stringify(baseConfig(undefined, {
    geo: { databases: [dbs.city], watch: true },
    audit: { dir: join(notDir, 'audit') },
    server: { host: '127.0.0.1', port: 0, adminPort: 0, trustedProxies: [] }
  })))
  // a watcher left open would keep the process alive until this kill bound, far above a normal failed start
  const r = await new Promise<{ code: number | null, signal: string | null, stderr: string }>((done) => {
    const child = execFile(process.execPath, [resolve('dist/cli/index.js'), 'serve', '--config', cfg, '--workers', '1'], { timeout: 60_000 }, (_err, _out, stderr) => {
      done({ code: child.exitCode, signal: child.signalCode, stderr })
    })
  })
  t.equal(r.signal, null, 'exited by itself')
  t.equal(r.code, 1)
  t.match(r.stderr, /ENOTDIR/)
})
