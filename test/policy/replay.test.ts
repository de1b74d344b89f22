/* Replaying recorded traffic under a candidate policy reports exactly what the change flips. */
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildTestGateway, baseConfig, startUpstream } from '../helpers/gateway.js'
import { entry, openWriter, tempDir } from '../helpers/audit.js'
import { runCli } from '../helpers/process.js'
import { parseConfig } from '../../src/config/load.js'
import { readRecords } from '../../src/audit/read.js'
import type { InteractionRecord } from '../../src/audit/types.js'
import { replayAudit } from '../../src/policy/replay.js'

const IPS = { US: '8.8.8.8', GB: '81.2.69.142', CU: '152.206.0.1', BR: '200.160.2.3' }
const BODIES = [
  { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] },
  { model: 'frontier-1', messages: [{ role: 'user', content: 'hi' }] },
  { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f' } }] },
  { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4000 }
]

t.test('moving one country to an embargoed tier: exactly its interactions are newly refused, nothing else flips', async (t) => {
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
  })
  const cfg = baseConfig(up.url, { audit: { scope: 'all' } })
  const gw = await buildTestGateway(cfg)
  const out = await mkdtemp(join(tmpdir(), 'geogate-replay-'))
  t.teardown(async () => { await gw.close(); await up.close(); await rm(out, { recursive: true, force: true }) })
  for (let round = 0; round < 3; round++) {
    for (const ip of Object.values(IPS)) {
      for (const key of ['test-key-tier1', 'test-key-tier2']) {
        for (const payload of BODIES) {
          await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', remoteAddress: ip, headers: { authorization: `Bearer ${key}` }, payload })
        }
      }
    }
  }
  await gw.rt.audit.flush()
  const recs: InteractionRecord[] = []
  for await (const { record } of readRecords(gw.rt.audit.dir, { kind: 'interaction' })) if (record.kind === 'interaction') recs.push(record)
  const brAllowed = recs.filter((r) => r.country === 'BR' && r.decision === 'allow').length
  const brRefused = recs.filter((r) => r.country === 'BR' && r.decision === 'deny').length
  t.ok(brAllowed > 0 && brRefused > 0, `BR traffic both allowed (${brAllowed}) and refused (${brRefused}) under the recorded policy`)

  // The candidate: Brazil (the default tier until now) is embargoed.
  const embargoed = (cfg.locations as { tiers: Record<string, string[]> }).tiers.embargoed ?? []
  const candidateRaw = { ...cfg, locations: { ...(cfg.locations as object), tiers: { ...(cfg.locations as { tiers: object }).tiers, embargoed: [...embargoed, 'BR'] } } }
  const candidate = parseConfig({ ...candidateRaw, audit: { dir: gw.rt.audit.dir } })

  const progress: number[] = []
  const rep = await replayAudit(gw.rt.audit.dir, candidate, { onProgress: (n) => progress.push(n), progressEvery: 10 })
  t.equal(rep.records, recs.length)
  t.equal(rep.replayed, recs.length)
  t.equal(rep.approximate, 0, 'every record carries what a re-decision needs')
  t.equal(rep.newlyRefused, brAllowed, 'exactly the interactions from BR that were allowed are newly refused')
  t.equal(rep.newlyAllowed, 0, 'nothing is newly allowed')
  t.equal(rep.ruleChanged, brRefused, 'BR interactions refused before are now refused by the location instead')
  t.ok(rep.rows.every((r) => r.change === 'newly-refused' && r.country === 'BR' && r.rule === 'location:embargoed'), 'every flip is BR, by the location rule')
  t.same(new Set(rep.rows.map((r) => `${r.model} ${r.org}`)), new Set(['llama-3.1-8b Org One', 'llama-3.1-8b Org Two']), 'by model × org')
  t.ok(progress.length >= 2, 'progress reported')

  // The same through the CLI: text, CSV and HTML.
  const file = join(out, 'candidate.json')
  await writeFile(file, JSON.stringify({ ...candidateRaw, audit: { dir: gw.rt.audit.dir } }))
  const text = await runCli(['policy', 'replay', '--audit', gw.rt.audit.dir, '--config', file])
  t.equal(text.code, 0, text.stderr)
  t.match(text.stdout, new RegExp(`newly refused ${brAllowed}, newly allowed 0`))
  t.match(text.stdout, /newly-refused\s+BR\s+llama-3\.1-8b\s+Org One\s+location:embargoed/)
  t.match(text.stderr, /replay: \d+ record\(s\) in [\d.]+ s/, 'progress and timing on stderr')
  const csv = await runCli(['policy', 'replay', '--audit', gw.rt.audit.dir, '--config', file, '--format', 'csv'])
  const lines = csv.stdout.trim().split('\r\n')
  t.equal(lines[0], 'change,country,model,org,rule,interactions,approximate')
  t.equal(lines.slice(1).reduce((s, l) => s + Number(l.split(',')[5]), 0), brAllowed)
  const html = await runCli(['policy', 'replay', '--audit', gw.rt.audit.dir, '--config', file, '--format', 'html'])
  t.match(html.stdout, /^<!doctype html>/)
  t.match(html.stdout, /<b>\d+<\/b>newly refused/)
  t.match(html.stdout, /<svg[^>]+aria-label="What flips, by caller country/)
  const noFrom = await runCli(['policy', 'replay', '--audit', gw.rt.audit.dir, '--config', file, '--from', 'not-a-date'])
  t.equal(noFrom.code, 2)
  const future = await runCli(['policy', 'replay', '--audit', gw.rt.audit.dir, '--config', file, '--from', '2099-01-01'])
  t.match(future.stdout, /0 interaction\(s\) read/, '--from bounds the records')
})

t.test('records written before they carried capabilities are replayed on what they carry, counted approximate', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  for (let i = 0; i < 20; i++) w.append(entry(i, { keyId: 'k1', keyTier: 'tier1', org: 'Org One' }))
  await w.close()
  const cfg = parseConfig(baseConfig())
  const rep = await replayAudit(dir, cfg)
  t.equal(rep.records, 20)
  t.equal(rep.approximate, rep.replayed, 'all approximate')
  t.ok(rep.replayed > 0)
  // the synthetic records say BR was refused as embargoed; under this policy BR is tier2: they flip, approximately
  t.ok(rep.newlyAllowed > 0)
  t.ok(rep.rows.length > 0 && rep.rows.every((r) => r.approximate === r.interactions), 'each row counts its approximate re-decisions')
})
