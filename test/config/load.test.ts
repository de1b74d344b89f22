import t from 'tap'
import { readFile, writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, parseConfig, ConfigError, interpolateEnv, type ConfigIssue } from '../../src/config/load.js'
import { schemaText } from '../../src/cli/schema.js'
import { baseConfig } from '../helpers/gateway.js'

t.test('the shipped config is valid and ECCN codes stay strings', async (t) => {
  const { config } = await loadConfig('config/geogate.yaml', {})
  t.equal(config.models['frontier-1']?.classification, '4E091')
  t.equal(config.redis.url, undefined, 'unset ${REDIS_URL} means absent')
  t.equal(config.server.port, 8080)
  t.ok(Object.isFrozen(config.tiers), 'frozen')
})

t.test('config/geogate.schema.json is the one generated from the TypeScript schema', async (t) => {
  t.equal(await readFile('config/geogate.schema.json', 'utf8'), schemaText(), 'run `npm run schema` after changing src/config/schema')
})

t.test('every error is reported at once, with its path', async (t) => {
  const raw = baseConfig()
  raw.server = { port: 'eighty', bogus: 1 }
  raw.models = { m: { backend: 'nope' } }
  ;(raw.tiers as Record<string, unknown>).tier1 = { failMode: 'sideways' }
  const err = t.throws(() => parseConfig(raw)) as ConfigError
  t.type(err, ConfigError)
  const paths = err.issues.map((i) => i.path)
  t.ok(paths.includes('/server/port'), 'bad type')
  t.ok(paths.includes('/server'), 'unknown property')
  t.ok(paths.some((p) => p.startsWith('/tiers/tier1/failMode')), 'bad enum')
})

t.test('references are checked: backends, tiers, duplicate locations', async (t) => {
  const raw = baseConfig()
  raw.models = { m: { backend: 'nope' } }
  raw.locations = { tiers: { tier1: ['US'], tier2: ['US', 'usa'] }, default: 'tier9', unknown: 'tier1' }
  const err = t.throws(() => parseConfig(raw)) as ConfigError
  const msgs = err.issues.map((i) => `${i.path} ${i.message}`)
  t.ok(msgs.some((m) => m.includes('/models/m/backend') && m.includes('nope')))
  t.ok(msgs.some((m) => m.includes('/locations/default') && m.includes('tier9')))
  t.ok(msgs.some((m) => m.includes('already mapped')))
  t.ok(msgs.some((m) => m.includes('"usa" is not')))
})

t.test('environment interpolation', async (t) => {
  const issues: ConfigIssue[] = []
  const out = interpolateEnv({ a: '${A}', b: 'x-${B}-y', c: '${MISSING}', d: '${MISSING:-dflt}', e: 'p${MISSING}q', f: [1, '${A}'] },
    { A: 'alpha', B: 'beta' }, '', issues)
  t.same(out, { a: 'alpha', b: 'x-beta-y', d: 'dflt', e: 'pq', f: [1, 'alpha'] })
  t.same(issues, [{ path: '/e', message: 'environment variable MISSING is not set' }])
})

t.test('YAML syntax errors name the line', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gg-cfg-'))
  const f = join(dir, 'bad.yaml')
  await writeFile(f, 'server:\n  port: [1,\n')
  await t.rejects(loadConfig(f), ConfigError)
})

t.test('hashes and ids that look like numbers stay as written', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gg-cfg-'))
  const f = join(dir, 'numeric.yaml')
  const digits = '1'.repeat(64)
  const text = (await readFile('config/geogate.yaml', 'utf8'))
    .replace(/- \{ id: demo-tier2, sha256: [0-9a-f]{64},/, `- { id: 0042, sha256: ${digits},`)
  t.not(text, await readFile('config/geogate.yaml', 'utf8'), 'the fixture edit applied')
  await writeFile(f, text)
  const { config } = await loadConfig(f, {})
  const key = config.keys.find((k) => k.sha256 === digits)
  t.ok(key, 'an all-digit sha256 is kept as the 64-character string')
  t.equal(key?.id, '0042', 'an id of digits keeps its leading zeros')
})
