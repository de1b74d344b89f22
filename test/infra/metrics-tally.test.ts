/*
 * The request path counts into Metrics' tallies, handed to prom-client when it collects: a scrape must show exactly
 * what was counted, a zero still creates its series, and a count prom-client would refuse never breaks a scrape.
 */
import t from 'tap'
import { Metrics } from '../../src/infra/metrics.js'

async function series (m: Metrics, name: string): Promise<Array<{ labels: Record<string, unknown>, value: number }>> {
  const all = await m.registry.getMetricsAsJSON()
  return (all.find((x) => x.name === name)?.values ?? []).map((v) => ({ labels: { ...v.labels }, value: v.value }))
}

t.test('requests, tokens and limit decisions: every count shows at the next scrape, none twice', async (t) => {
  const m = new Metrics()
  m.countRequest('allow', 'tier1', 'tier1', 'gpt-x', 200)
  m.countRequest('allow', 'tier1', 'tier1', 'gpt-x', 200)
  m.countRequest('deny', 'embargo', 'embargoed', 'gpt-x', 451)
  t.same(await series(m, 'geogate_requests_total'), [
    { labels: { decision: 'allow', rule: 'tier1', location_tier: 'tier1', model: 'gpt-x', status: '200' }, value: 2 },
    { labels: { decision: 'deny', rule: 'embargo', location_tier: 'embargoed', model: 'gpt-x', status: '451' }, value: 1 }
  ])
  m.countRequest('allow', 'tier1', 'tier1', 'gpt-x', 200)
  const again = await series(m, 'geogate_requests_total')
  t.equal(again[0]?.value, 3, 'a second scrape adds only what came since')
  t.equal(again[1]?.value, 1)
  t.equal((await m.registry.metrics()).match(/geogate_requests_total\{[^}]*status="200"\} 3/)?.length, 1, 'the text exposition agrees')

  m.countTokens('gpt-x', 'tier1', 12, 0)
  t.same(await series(m, 'geogate_tokens_total'), [
    { labels: { direction: 'in', model: 'gpt-x', location_tier: 'tier1' }, value: 12 },
    { labels: { direction: 'out', model: 'gpt-x', location_tier: 'tier1' }, value: 0 }
  ], 'a count of 0 still creates its series, as inc(labels, 0) did')

  m.countTokens('gpt-x', 'tier1', Number.NaN, -3)
  m.countTokens('gpt-x', 'tier1', 1, 1)
  t.same((await series(m, 'geogate_tokens_total')).map((s) => s.value), [13, 1], 'NaN and negative counts are dropped; the scrape still works')

  m.countLimitDecision('allowed', false)
  m.countLimitDecision('allowed', true)
  m.countLimitDecision('limited', false)
  m.countLimitDecision('allowed', false)
  t.same(await series(m, 'geogate_limiter_decisions_total'), [
    { labels: { result: 'allowed', degraded: 'false' }, value: 2 },
    { labels: { result: 'allowed', degraded: 'true' }, value: 1 },
    { labels: { result: 'limited', degraded: 'false' }, value: 1 }
  ])
})

t.test('cross-border and anonymizer counts: each label set separately, at the next scrape', async (t) => {
  const m = new Metrics()
  m.countCrossBorder('allow', 'DE')
  m.countCrossBorder('allow', 'DE')
  m.countCrossBorder('deny', 'DE')
  m.countCrossBorder('allow', 'JP')
  m.countAnonymizer('vpn', 'deny')
  m.countAnonymizer('tor', 'deny')
  m.countAnonymizer('vpn', 'deny')
  t.same(await series(m, 'geogate_cross_border_requests_total'), [
    { labels: { decision: 'allow', country: 'DE' }, value: 2 },
    { labels: { decision: 'deny', country: 'DE' }, value: 1 },
    { labels: { decision: 'allow', country: 'JP' }, value: 1 }
  ])
  t.same(await series(m, 'geogate_anonymizer_requests_total'), [
    { labels: { kind: 'vpn', decision: 'deny' }, value: 2 },
    { labels: { kind: 'tor', decision: 'deny' }, value: 1 }
  ])
  m.countCrossBorder('allow', 'DE')
  t.equal((await series(m, 'geogate_cross_border_requests_total'))[0]?.value, 3, 'a second scrape adds only what came since')
})
