import t, { type Test } from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { baseConfig } from '../helpers/gateway.js'
import { ROOT, spawnGateway } from '../helpers/process.js'

/*
 * `geogate serve` must not load what only some features use: DuckDB (audit SQL, reports), pg and the AWS SDK
 * (witnesses), ioredis (redis). Together they cost ~45 MB of RSS in every replica (README "Performance"). The
 * spawned gateway records every module it loads (test/fixtures/module-trace); DuckDB's native library is also
 * looked for in /proc/<pid>/maps.
 */

const TRACER = pathToFileURL(join(ROOT, 'test', 'fixtures', 'module-trace', 'register.mjs')).href
const LAZY: Array<[string, RegExp]> = [
  ['@duckdb/node-api', /[/\\]@duckdb[/\\]/],
  ['pg', /[/\\]node_modules[/\\](pg|pg-pool|pg-protocol)[/\\]/],
  ['@aws-sdk/client-s3', /[/\\]node_modules[/\\](@aws-sdk|@smithy)[/\\]/],
  // the config has no redis section
  ['ioredis', /[/\\]node_modules[/\\]ioredis[/\\]/]
]
const linux = process.platform === 'linux'

async function serveTraced (t: Test, patch: Record<string, unknown>): Promise<{ adminUrl: string, pid: number, loaded: () => Promise<string[]> }> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-lazy-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'geogate.json')
  await writeFile(file, JSON.stringify(baseConfig('http://127.0.0.1:9', {
    server: { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, trustedProxies: [] },
    audit: { dir: join(dir, 'audit'), ...patch },
    log: { level: 'info' }
  })))
  const trace = join(dir, 'modules.txt')
  const gw = await spawnGateway(file, [], { NODE_OPTIONS: `--import=${TRACER}`, GEOGATE_MODULE_TRACE: trace })
  // stopped before its directory is removed (teardowns run last-registered first): it may still be writing there
  t.teardown(async () => { gw.proc.kill(); await gw.proc.exited })
  const pid = gw.proc.child.pid
  if (pid === undefined) throw new Error('no pid')
  return { adminUrl: gw.adminUrl, pid, loaded: async () => (await readFile(trace, 'utf8')).split('\n') }
}

async function duckdbMapped (pid: number): Promise<boolean> {
  return /duckdb/i.test(await readFile(`/proc/${pid}/maps`, 'utf8'))
}

t.test('serve loads DuckDB at the first audit query, not at boot', async (t) => {
  const gw = await serveTraced(t, {})
  const before = await gw.loaded()
  for (const [pkg, re] of LAZY) t.notOk(before.some((m) => re.test(m)), `${pkg} not loaded at boot`)
  if (linux) t.notOk(await duckdbMapped(gw.pid), 'no DuckDB library mapped at boot')

  const res = await fetch(`${gw.adminUrl}/admin/audit/query?sql=${encodeURIComponent('SELECT count(*) AS n FROM records')}`, { headers: { authorization: 'Bearer test-auditor' } })
  t.equal(res.status, 200, 'the query endpoint still answers')
  t.same((await res.json() as { columns: string[] }).columns, ['n'])
  // the checks above can see DuckDB when it is there
  t.ok((await gw.loaded()).some((m) => LAZY[0]?.[1].test(m) === true), 'DuckDB loaded by the query')
  if (linux) t.ok(await duckdbMapped(gw.pid), 'DuckDB library mapped after the query')
})

t.test('with witnesses configured, pg and the AWS SDK wait for the first digest', async (t) => {
  // unreachable on purpose: nothing is sent before a digest is written
  const gw = await serveTraced(t, {
    witness: {
      postgres: { url: 'postgres://gateway@127.0.0.1:9/evidence' },
      s3: { bucket: 'evidence', region: 'eu-central-1', endpoint: 'http://127.0.0.1:9' }
    }
  })
  const loaded = await gw.loaded()
  for (const [pkg, re] of LAZY) t.notOk(loaded.some((m) => re.test(m)), `${pkg} not loaded at boot`)
  if (linux) t.notOk(await duckdbMapped(gw.pid), 'no DuckDB library mapped at boot')
})
