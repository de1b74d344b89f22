// The A/B config: Redis limits on every counter kind, audit scope all, default logging, callers via trusted XFF.
import { createHash } from 'node:crypto'
import { writeFileSync, mkdirSync } from 'node:fs'
const sha = (s) => createHash('sha256').update(s).digest('hex')
export function write (file, { port, adminPort, backend, dir, redis = true, extra = {} }) {
  mkdirSync(dir, { recursive: true })
  const cfg = {
    server: { host: '127.0.0.1', port, adminHost: '127.0.0.1', adminPort, trustedProxies: ['127.0.0.1/32'], ...(extra.server ?? {}) },
    ...(redis ? { redis: { url: 'redis://127.0.0.1:28379', keyPrefix: `hpbench:${port}:`, commandTimeoutMs: 2000 } } : {}),
    backends: { gpu: { url: backend, region: 'US' } },
    models: { 'llama-3.1-8b': { backend: 'gpu', classification: 'EAR99' } },
    locations: { tiers: { embargoed: ['CU', 'IR', 'KP', 'SY'], tier1: ['US', 'GB', 'DE'] }, default: 'tier1', unknown: 'tier1', anonymizers: 'embargoed' },
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat', 'completions', 'embeddings', 'tools', 'streaming'], limits: { requestsPerMinute: 100000000, tokensPerMinute: 1000000000, concurrency: 100000 }, failMode: 'open' },
      embargoed: { deny: true }
    },
    keys: [{ id: 'k1', sha256: sha('test-key-tier1'), org: 'Org One', tier: 'tier1', country: 'US' }],
    audit: { dir: dir + '/audit', scope: 'all' },
    log: { level: 'info', ...(extra.log ?? {}) }
  }
  writeFileSync(file, JSON.stringify(cfg))
}
