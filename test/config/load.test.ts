import t, { type Test } from 'tap'
import { readFile, writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, parseConfig, ConfigError, interpolateEnv, type ConfigIssue } from '../../src/config/load.js'
import { schemaText } from '../../src/cli/schema.js'
import { baseConfig } from '../helpers/gateway.js'
import { AuditSchema } from '../../src/config/schema/index.js'

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
  t.ok(paths.includes('/server/bogus'), 'unknown property, at its own path')
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

t.test('environment interpolation is strict', async (t) => {
  const issues: ConfigIssue[] = []
  const out = interpolateEnv({ a: '${A}', b: 'x-${B}-y', c: '${MISSING}', d: '${MISSING:-dflt}', e: 'p${MISSING}q', f: [1, '${A}'], g: '${MISSING:-}', h: '${EMPTY:-}', i: 'lit $${A}' },
    { A: 'alpha', B: 'beta', EMPTY: '' }, '', issues)
  t.same(out, { a: 'alpha', b: 'x-beta-y', c: '${MISSING}', d: 'dflt', e: 'pq', f: [1, 'alpha'], i: 'lit ${A}' }, '${X:-} unset or empty: the key is absent, never ""; an error leaves the text as written')
  t.same(issues.map((i) => `${i.path}: ${i.message}`), [
    '/c: environment variable MISSING is not set (write ${MISSING:-default} for a default, or ${MISSING:-} to make it optional)',
    '/e: environment variable MISSING is not set (in "p${MISSING}q")'
  ])
})

const writeConfig = async (edit: (text: string) => string): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'gg-cfg-'))
  const f = join(dir, 'edited.yaml')
  const orig = await readFile('config/geogate.yaml', 'utf8')
  const text = edit(orig)
  if (text === orig) throw new Error('the fixture edit did not apply')
  await writeFile(f, text)
  return f
}
const issuesOf = async (t: Test, f: string, env: NodeJS.ProcessEnv): Promise<string[]> => {
  const err = await loadConfig(f, env).then(() => null, (e: unknown) => e)
  t.type(err, ConfigError)
  return err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`) : []
}

t.test('an unset variable is an error naming it and the path', async (t) => {
  const f = await writeConfig((s) => s.replace('url: ${REDIS_URL:-}', 'url: ${REDIS_URL_TYPO}'))
  t.same(await issuesOf(t, f, {}), ['/redis/url: environment variable REDIS_URL_TYPO is not set (write ${REDIS_URL_TYPO:-default} for a default, or ${REDIS_URL_TYPO:-} to make it optional)'])
  const { config } = await loadConfig(f, { REDIS_URL_TYPO: 'redis://10.0.0.1:6379' })
  t.equal(config.redis.url, 'redis://10.0.0.1:6379')
})

t.test('an unterminated reference is an error, not a literal', async (t) => {
  const f = await writeConfig((s) => s.replace('url: "${MOCK_BACKEND_URL:-http://127.0.0.1:8000}"', 'url: "${BE_US_KEY"'))
  t.same(await issuesOf(t, f, { BE_US_KEY: 'x' }), ['/backends/mock-us/url: unterminated reference "${BE_US_KEY": a ${ needs its closing } (write $${ for a literal ${)'])
})

t.test('${X:-} left empty means absent: the audit dir keeps its default', async (t) => {
  const f = await writeConfig((s) => s.replace('  dir: var/audit', '  dir: ${AUDIT_DIR:-}'))
  const { config } = await loadConfig(f, { AUDIT_DIR: '' })
  t.equal(config.audit.dir, AuditSchema.properties.dir.default, 'the schema default, not "" (the working directory)')
  t.not(config.audit.dir, '')
})

t.test('numbers and booleans come from the environment, coerced to the schema type', async (t) => {
  const f = await writeConfig((s) => s.replace('port: 8080', 'port: ${GG_PORT}').replace('geo: {}', 'geo: { watch: "${GG_WATCH:-false}" }'))
  const { config } = await loadConfig(f, { GG_PORT: '8181' })
  t.equal(config.server.port, 8181)
  t.equal(config.geo.watch, false, 'a default is coerced too')
  t.same(await issuesOf(t, f, { GG_PORT: '80a' }), ['/server/port: "80a" from ${GG_PORT} is not an integer'])
  t.same(await issuesOf(t, f, { GG_PORT: '80', GG_WATCH: 'yes' }), ['/geo/watch: "yes" from ${GG_WATCH} is not true or false'])
  t.same(await issuesOf(t, f, { GG_PORT: '99999' }), ['/server/port: 99999 (from ${GG_PORT}) must be <= 65535'], 'the range check names the variable')
})

t.test('an enum error says the value and what is allowed, once', async (t) => {
  const raw = baseConfig()
  ;(raw.tiers as Record<string, Record<string, unknown>>).tier1 = { capabilities: ['chat', 'embedding'], failMode: 'sideways' }
  const err = t.throws(() => parseConfig(raw)) as ConfigError
  t.same(err.issues.map((i) => `${i.path}: ${i.message}`), [
    '/tiers/tier1/capabilities/1: "embedding" is not allowed; allowed: chat, completions, embeddings, images, audio, fine-tuning, tools, streaming',
    '/tiers/tier1/failMode: "sideways" is not allowed; allowed: open, closed'
  ])
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
