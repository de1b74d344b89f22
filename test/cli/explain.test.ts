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
