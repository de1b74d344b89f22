/*
 * The write-ahead journal wait histogram as the gateway bench reads it: scraped as Prometheus text before and after
 * a phase, differenced, and its quantiles interpolated within buckets as PromQL histogram_quantile() does.
 */
import t from 'tap'
import { Metrics } from '../../src/infra/metrics.js'
import { histogramDelta, histogramQuantile, parseHistogram } from '../bench/gateway/histogram.js'

const NAME = 'geogate_audit_journal_wait_seconds'

t.test('buckets fine enough below 1 ms for a p50 of a group commit', async (t) => {
  const m = new Metrics()
  const h = parseHistogram(await m.registry.metrics(), NAME)
  if (h === null) throw new Error('no journal wait histogram in /metrics')
  const finite = h.buckets.map((b) => b.le).filter((le) => le <= 0.001)
  t.ok(finite.length >= 8, `≥ 8 bounds up to 1 ms (${finite.join(', ')})`)
  t.equal(h.buckets[0]?.le, 0.00005)
  t.equal(h.buckets.at(-1)?.le, Infinity)
})

t.test('the difference of two scrapes gives the quantiles of what happened between them', async (t) => {
  const m = new Metrics()
  for (let i = 0; i < 50; i++) m.auditJournalWait.observe(0.2) // before the phase: ignored
  const before = parseHistogram(await m.registry.metrics(), NAME)
  // 100 observations spread evenly in (300 µs, 400 µs], 1 slow one
  for (let i = 1; i <= 100; i++) m.auditJournalWait.observe(0.0003 + i * 0.000001)
  m.auditJournalWait.observe(3)
  const after = parseHistogram(await m.registry.metrics(), NAME)
  if (before === null || after === null) throw new Error('no journal wait histogram in /metrics')
  const d = histogramDelta(before, after)
  if (d === null) throw new Error('no delta')
  t.equal(d.count, 101)
  // rank 50.5 of 101, all 100 in the (0.3 ms, 0.4 ms] bucket: 0.3 + 0.1 × 50.5 / 100 ms
  t.ok(Math.abs(histogramQuantile(0.5, d) - 0.0003505) < 1e-9, `p50 ${histogramQuantile(0.5, d)}`)
  t.ok(Math.abs(histogramQuantile(0.99, d) - 0.00039999) < 1e-9, `p99 ${histogramQuantile(0.99, d)}`)
  // in the +Inf bucket: the highest finite bound, as PromQL answers
  t.equal(histogramQuantile(0.999, d), 2.5)
  t.ok(Number.isNaN(histogramQuantile(0.5, histogramDelta(after, after) ?? d)), 'an empty phase has no quantile')
  t.equal(histogramDelta(after, before), null, 'counts that went down (a restarted process) give no figure')
})
