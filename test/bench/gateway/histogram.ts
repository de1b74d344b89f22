/**
 * A Prometheus histogram read from a gateway's /metrics before and after a phase: the difference is what the phase
 * observed, and its quantiles are interpolated within buckets the way PromQL's histogram_quantile() does (linear
 * between a bucket's lower and upper bound; a quantile in the +Inf bucket is the highest finite bound).
 */
import { request } from 'undici'

/** Cumulative bucket counts by upper bound (`le`, +Inf included), in bound order. */
export interface Histogram { buckets: Array<{ le: number, count: number }>, count: number, sum: number }

/** The unlabelled histogram `name` in Prometheus text, or null when it is not there. */
export function parseHistogram (text: string, name: string): Histogram | null {
  const buckets: Array<{ le: number, count: number }> = []
  let count: number | null = null
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    const value = Number(rest.slice(rest.lastIndexOf(' ') + 1))
    if (rest.startsWith('_bucket{')) {
      const le = /le="([^"]+)"/.exec(rest)?.[1]
      if (le !== undefined) buckets.push({ le: le === '+Inf' ? Infinity : Number(le), count: value })
    } else if (rest.startsWith('_count')) count = value
    else if (rest.startsWith('_sum')) sum = value
  }
  if (buckets.length === 0 || count === null) return null
  buckets.sort((a, b) => a.le - b.le)
  return { buckets, count, sum }
}

/** after − before, bucket by bucket; null when the buckets differ or a count went down (a process restarted). */
export function histogramDelta (before: Histogram, after: Histogram): Histogram | null {
  if (before.buckets.length !== after.buckets.length) return null
  const buckets = after.buckets.map((b, i) => ({ le: b.le, count: b.count - (before.buckets[i]?.count ?? NaN) }))
  if (buckets.some((b, i) => !(b.count >= 0) || b.le !== before.buckets[i]?.le)) return null
  return { buckets, count: after.count - before.count, sum: after.sum - before.sum }
}

/** histogram_quantile(q, h): NaN when the histogram is empty. */
export function histogramQuantile (q: number, h: Histogram): number {
  const total = h.buckets.at(-1)?.count ?? 0
  if (total <= 0) return NaN
  const rank = q * total
  let prevLe = 0
  let prevCount = 0
  for (const [i, b] of h.buckets.entries()) {
    if (b.count >= rank) {
      if (b.le === Infinity) return i === 0 ? NaN : prevLe
      // the first bucket's lower bound is 0 (PromQL: when its upper bound is positive)
      if (b.count === prevCount) return b.le
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / (b.count - prevCount)
    }
    prevLe = b.le
    prevCount = b.count
  }
  return prevLe
}

/** GET /metrics with a bearer token; null when it does not answer 200 (the row is then without these figures). */
export async function scrape (url: string, token: string): Promise<string | null> {
  try {
    const res = await request(url, { headers: { authorization: `Bearer ${token}` }, headersTimeout: 10_000, bodyTimeout: 10_000 })
    const text = await res.body.text()
    return res.statusCode === 200 ? text : null
  } catch {
    return null
  }
}
