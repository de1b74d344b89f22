/* The built `geogate explain`, as a process (npm test builds dist/ first). */
import t from 'tap'
import { runCli, type CliResult } from '../helpers/process.js'

const run = async (args: string[]): Promise<CliResult> => await runCli(['explain', ...args])

t.test('geogate explain against the shipped configuration', async (t) => {
  const cu = await run(['--config', 'config/geogate.yaml', '--ip', '152.206.0.1', '--key-id', 'demo-tier1', '--model', 'llama-3.1-8b'])
  t.equal(cu.code, 0, cu.stderr)
  t.match(cu.stdout, /country\s+CU/)
  t.match(cu.stdout, /location tier\s+embargoed \(from country:CU\)/)
  t.match(cu.stdout, /rule\s+location:embargoed/)
  t.match(cu.stdout, /model\s+EAR99, origin US, served in US/)
  t.match(cu.stdout, /decision\s+DENY 451 geo_restricted/)
  t.match(cu.stdout, /geodb\[0\]\s+\S+geo-whois-asn-country\.mmdb \(.*built \d{4}-/)

  const json = await run(['--config', 'config/geogate.yaml', '--ip', '8.8.8.8', '--key-id', 'demo-tier2', '--model', 'llama-3.1-8b', '--endpoint', '/v1/chat/completions', '--max-tokens', '4000', '--json'])
  t.equal(json.code, 0, json.stderr)
  const trace = JSON.parse(json.stdout)
  t.same([trace.location.country, trace.locationTier, trace.keyTier, trace.rule, trace.decision.clampOutputTokens], ['US', 'tier1', 'tier2', 'key-tier:tier2:max-output-tokens:clamp', 1024])

  const usage = await run(['--config', 'config/geogate.yaml', '--ip', '8.8.8.8'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /--key-id/)
  const badKey = await run(['--config', 'config/geogate.yaml', '--ip', '8.8.8.8', '--key-id', 'ghost', '--model', 'm'])
  t.equal(badKey.code, 1)
  t.match(badKey.stderr, /no API key with id "ghost"/)
})

t.test('explain --admin-url asks the running gateway (live overrides); without it, says "file only"', async (t) => {
  const { startReplicas } = await import('../helpers/replicas.js')
  const { baseConfig } = await import('../helpers/gateway.js')
  const reps = await startReplicas(1, baseConfig('http://127.0.0.1:9', { log: { level: 'info' } }))
  t.teardown(async () => { await reps.stop() })
  const admin = reps.adminUrls[0] ?? ''
  // the live gateway refuses tier2 from now on; the file still allows it
  const patched = await fetch(`${admin}/admin/tiers/tier2`, { method: 'PATCH', headers: { authorization: 'Bearer test-admin', 'content-type': 'application/json' }, body: JSON.stringify({ deny: true }) })
  t.equal(patched.status, 200)
  const query = ['--ip', '8.8.8.8', '--key-id', 'k2', '--model', 'llama-3.1-8b']

  const fileOnly = await run(['--config', reps.files[0] ?? '', ...query])
  t.equal(fileOnly.code, 0, fileOnly.stderr)
  t.match(fileOnly.stdout, /^source: file only \(.*replica-0\.yaml\): keys, tiers and locations changed through a running gateway's admin API are not seen; ask it with --admin-url\n/)
  t.match(fileOnly.stdout, /decision\s+ALLOW 200/)

  const live = await runCli(['explain', '--admin-url', admin, ...query], { GEOGATE_ADMIN_TOKEN: 'test-auditor' })
  t.equal(live.code, 0, live.stderr)
  t.match(live.stdout, new RegExp(`^source: the running gateway at ${admin.replace(/[.]/g, '\\.')} \\(live policy: file plus admin changes\\)\\n`))
  t.match(live.stdout, /rule\s+key-tier:tier2:deny/)
  t.match(live.stdout, /decision\s+DENY 403/)

  const json = await runCli(['explain', '--admin-url', admin, '--json', ...query], { GEOGATE_ADMIN_TOKEN: 'test-auditor' })
  const trace = JSON.parse(json.stdout) as { rule: string, source: { kind: string } }
  t.same([trace.source.kind, trace.rule], ['live', 'key-tier:tier2:deny'])

  const noToken = await runCli(['explain', '--admin-url', admin, ...query], { GEOGATE_ADMIN_TOKEN: '' })
  t.equal(noToken.code, 1)
  t.match(noToken.stderr, /set GEOGATE_ADMIN_TOKEN/)
})
