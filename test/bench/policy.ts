/*
 * Throughput of the policy stages on one core: client-IP resolution (trusted proxy + XFF walk), request
 * description, and decide() against the shipped configuration. Run: node --import tsx test/bench/policy.ts
 */
import { performance } from 'node:perf_hooks'
import { ClientIpResolver } from '../../src/net/forwarded.js'
import { describeRequest } from '../../src/policy/endpoint.js'
import { decide } from '../../src/policy/decide.js'
import { loadConfig } from '../../src/config/load.js'
import { snapshotFromConfig } from '../../src/policy/snapshot.js'
import { unknownGeo } from '../../src/geo/types.js'

function bench (name: string, n: number, fn: (i: number) => unknown): void {
  for (let i = 0; i < Math.min(n, 10_000); i++) fn(i) // warm up
  const t0 = performance.now()
  let sink = 0
  for (let i = 0; i < n; i++) if (fn(i) !== undefined) sink++
  const ms = performance.now() - t0
  process.stdout.write(`${name.padEnd(44)} ${Math.round(n / (ms / 1000)).toLocaleString('en-US').padStart(12)} ops/s  (${(ms * 1000 / n).toFixed(2)} µs/op, ${sink === n ? 'ok' : 'sink'})\n`)
}

const { config } = await loadConfig('config/geogate.yaml', {})
const policy = snapshotFromConfig(config)
const resolver = new ClientIpResolver(['10.0.0.0/8', '172.16.0.0/12', '2001:db8:ffff::/48'])
const N = 500_000

bench('client-ip: untrusted peer', N, () => resolver.resolve('8.8.8.8', { 'x-forwarded-for': '1.1.1.1' }))
bench('client-ip: trusted peer, 3-entry XFF', N, () => resolver.resolve('10.0.0.1', { 'x-forwarded-for': '9.9.9.9, 152.206.0.1, 10.2.2.2' }))
bench('client-ip: trusted peer, Forwarded IPv6', N, () => resolver.resolve('::ffff:10.0.0.1', { forwarded: 'for="[2001:4860:4860::8888]:443";proto=https' }))
const body = { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'Hello there, how are you today?' }], max_tokens: 256, stream: true }
bench('describeRequest: chat, streaming', N, () => describeRequest('POST', '/v1/chat/completions', body))
const shape = describeRequest('POST', '/v1/chat/completions', body)
const us = { ...unknownGeo('2026-01-01T00:00:00Z'), country: 'US' }
const ua = { ...unknownGeo('2026-01-01T00:00:00Z'), country: 'UA', subdivisions: ['UA-43'] }
const who = { keyId: 'demo-tier2', org: 'Demo', tier: 'tier2', verifiedEntity: false }
bench('decide: US, tier2 key, clamp', N, () => decide(shape, us, who, policy))
bench('decide: Crimea subdivision, 451', N, () => decide(shape, ua, who, policy))
