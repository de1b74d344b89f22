/**
 * What the gateway benchmark generates before it starts anything: GeoIP databases, caller addresses, API keys,
 * and the configuration files of nginx and geogate. Nothing here imports geogate's source: geogate is driven
 * only through its CLI and a config file, as an operator would.
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { writeFileSync } from 'node:fs'
import maxmind, { type Reader, type Response } from 'maxmind'
import { geoip2Record, anonymousIpRecord } from '../../helpers/geo-fixtures.js'
import { writeMmdb, type MmdbEntry } from '../../helpers/mmdb-writer.js'

export const TIER1 = ['US', 'GB', 'DE', 'FR', 'JP', 'NL', 'SE']
export const TIER2 = ['CN', 'IN', 'BR', 'CA', 'AU', 'ES', 'IT', 'PL', 'MX', 'KR']
export const EMBARGOED = ['CU', 'IR', 'KP', 'SY']
const COUNTRIES = [...TIER1, ...TIER2, ...EMBARGOED]

/** The backend's fixed answer (also what the nginx mock returns). */
export const COMPLETION = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1767225600,
  model: 'bench',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the benchmark backend.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 }
})

/** Deterministic PRNG, so runs compare. */
function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function ipv4 (n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

/** Public unicast: not 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.168/16, 224/3. */
function isPublic (n: number): boolean {
  const a = n >>> 24
  const b = (n >>> 16) & 255
  return a > 0 && a < 224 && a !== 10 && a !== 127 && !(a === 100 && b >= 64 && b < 128) && !(a === 169 && b === 254) && !(a === 172 && b >= 16 && b < 32) && !(a === 192 && b === 168)
}

export interface GeoSet {
  city: string
  anon: string
  /** callers in allowed countries (tier1 and tier2), none behind an anonymizer */
  mixed: string[]
  /** callers in the backend's own country (US), none behind an anonymizer */
  us: string[]
}

/** A City database of `networks` IPv4 /24s (plus IPv6 /32s) over 20k places, and 50k Anonymous-IP /28s. */
export async function writeGeo (dir: string, networks: number, callers: number): Promise<GeoSet> {
  const r = rng(42)
  const places = Array.from({ length: 20_000 }, (_, i) => ({
    country: COUNTRIES[i % COUNTRIES.length] ?? 'US',
    rec: geoip2Record({ country: COUNTRIES[i % COUNTRIES.length] ?? 'US', subdivisions: [String(i % 97).padStart(2, '0')] })
  }))
  const anonSlash24 = new Set<number>()
  const anon: MmdbEntry[] = []
  for (let i = 0; i < 50_000; i++) {
    const net = (Math.floor(r() * 0xffffff) << 8) >>> 0
    anonSlash24.add(net)
    anon.push({ network: `${ipv4(net + (Math.floor(r() * 16) << 4))}/28`, data: anonymousIpRecord({ vpn: i % 2 === 0, hosting: i % 3 === 0, tor: i % 11 === 0 }) })
  }
  const city: MmdbEntry[] = []
  const seen = new Set<number>()
  const mixed: string[] = []
  const us: string[] = []
  while (city.length < networks) {
    const net = (Math.floor(r() * 0xffffff) << 8) >>> 0
    if (seen.has(net)) continue
    seen.add(net)
    const place = places[Math.floor(r() * places.length)] ?? places[0]
    if (place === undefined) break
    city.push({ network: `${ipv4(net)}/24`, data: place.rec })
    if (!isPublic(net) || anonSlash24.has(net)) continue
    const addr = ipv4(net + 1 + Math.floor(r() * 250))
    if (place.country === 'US') { if (us.length < callers) us.push(addr) } else if (!EMBARGOED.includes(place.country) && mixed.length < callers) mixed.push(addr)
  }
  for (let i = 0; i < 20_000; i++) city.push({ network: `2001:${(0x1000 + i).toString(16)}::/32`, data: places[i % places.length]?.rec ?? {} })
  const buildEpoch = new Date()
  return {
    city: await writeMmdb(join(dir, 'Bench-City.mmdb'), city, { databaseType: 'GeoIP2-City', buildEpoch }),
    anon: await writeMmdb(join(dir, 'Bench-Anonymous-IP.mmdb'), anon, { databaseType: 'GeoIP2-Anonymous-IP', buildEpoch }),
    mixed,
    us
  }
}

/** The embedded default country database geogate uses with `geo: {}` (shipped as an npm dependency). */
export async function openDefaultGeo (): Promise<Reader<Response>> {
  const require = createRequire(import.meta.url)
  return await maxmind.open<Response>(join(dirname(require.resolve('@ip-location-db/geo-whois-asn-country-mmdb/package.json')), 'geo-whois-asn-country.mmdb'))
}

/** Of `addrs`, those the default database does not place in an embargoed country (so no request is refused). */
export async function allowedByDefaultGeo (addrs: string[]): Promise<string[]> {
  const reader = await openDefaultGeo()
  return addrs.filter((a) => {
    const rec = reader.get(a) as { country_code?: string } | null
    return !EMBARGOED.includes(rec?.country_code ?? '')
  })
}

export function sha256 (s: string): string { return createHash('sha256').update(s).digest('hex') }

export function apiKeys (n: number): string[] {
  return Array.from({ length: n }, (_, i) => `gg-bench-${String(i).padStart(4, '0')}`)
}

/** The bearer token of the generated configs' admin plane (read-only: the bench only scrapes /metrics). */
export const ADMIN_TOKEN = 'gg-bench-admin'

export interface GeogateVariant {
  geo: 'generated' | 'default'
  redis: boolean
  log: 'info' | 'warn'
  audit: 'all' | 'cross-border'
}

/** A geogate config (JSON is YAML) with limits far above the load, so every request is allowed and forwarded. */
export function geogateConfig (v: GeogateVariant, o: { port: number, adminPort: number, jsonUrl: string, sseUrl: string, connections: number, geo: GeoSet, auditDir: string, redisUrl: string, redisPrefix: string, keys: string[] }): string {
  const limits = { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1_000_000_000_000, concurrency: 1_000_000 }
  const tier = { models: ['bench-*'], capabilities: ['chat', 'streaming'], limits, failMode: 'open' }
  return JSON.stringify({
    server: { host: '127.0.0.1', port: o.port, adminHost: '127.0.0.1', adminPort: o.adminPort, trustedProxies: ['127.0.0.1/32'] },
    geo: v.geo === 'generated' ? { databases: [o.geo.city, o.geo.anon], watch: false } : {},
    ...(v.redis ? { redis: { url: o.redisUrl, keyPrefix: o.redisPrefix } } : {}),
    backends: {
      json: { url: o.jsonUrl, region: 'US', connections: o.connections },
      sse: { url: o.sseUrl, region: 'US', connections: o.connections }
    },
    models: { 'bench-json': { backend: 'json', classification: 'EAR99' }, 'bench-sse': { backend: 'sse', classification: 'EAR99' } },
    locations: { tiers: { embargoed: EMBARGOED, tier1: TIER1 }, default: 'tier2', unknown: 'tier2', anonymizers: 'embargoed', internal: 'tier1' },
    tiers: { tier1: tier, tier2: tier, embargoed: { deny: true } },
    keys: o.keys.map((k, i) => ({ id: `bench-${i}`, sha256: sha256(k), org: 'Bench Org', tier: 'tier1' })),
    audit: { dir: o.auditDir, scope: v.audit },
    admin: { tokens: [{ sha256: sha256(ADMIN_TOKEN), role: 'auditor', name: 'bench' }] },
    log: { level: v.log }
  }, null, 2)
}

/** nginx's own paths under `dir`, one process (no master), no daemon. */
function nginxHead (dir: string, name: string): string {
  return `# generated by test/bench/gateway.ts
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}.error.log warn;
events { worker_connections 16384; }
`
}

function nginxTemps (dir: string, name: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${name}-${t};`).join('\n')
}

/** The cheap JSON backend: a static body. */
export function nginxMockConf (dir: string, port: number): string {
  return `${nginxHead(dir, 'nginx-mock')}
http {
${nginxTemps(dir, 'nginx-mock')}
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type application/json;
      return 200 '${COMPLETION}';
    }
  }
}
`
}

/**
 * nginx as a geofencing proxy: the caller from X-Forwarded-For (trusted from loopback), City + Anonymous-IP
 * lookups, a country → tier map, a per-key limit_req, keep-alive upstreams, access log on (nginx's default).
 */
export function nginxProxyConf (dir: string, modulePath: string, port: number, jsonUrl: string, sseUrl: string, geo: GeoSet): string {
  const hostPort = (u: string): string => new URL(u).host
  const tiers = [...TIER1.map((c) => `    ${c} tier1;`), ...EMBARGOED.map((c) => `    ${c} embargoed;`)].join('\n')
  return `load_module ${modulePath};
${nginxHead(dir, 'nginx-proxy')}
http {
${nginxTemps(dir, 'nginx-proxy')}
  access_log ${dir}/nginx-proxy.access.log combined buffer=64k flush=1s;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  set_real_ip_from 127.0.0.1/32;
  real_ip_header X-Forwarded-For;
  geoip2 ${geo.city} { $geo_country country iso_code; }
  geoip2 ${geo.anon} { $geo_anonymous default=0 is_anonymous; }
  map $geo_country $geo_tier {
    default tier2;
${tiers}
  }
  map "$geo_tier:$geo_anonymous" $geo_deny {
    default 0;
    "~^embargoed:" 1;
    "~:1$" 1;
  }
  limit_req_zone $http_authorization zone=perkey:16m rate=1000000r/s;
  upstream json_mock { server ${hostPort(jsonUrl)}; keepalive 256; keepalive_requests 10000000; }
  upstream sse_mock { server ${hostPort(sseUrl)}; keepalive 256; keepalive_requests 10000000; }
  map $http_x_bench_upstream $bench_upstream { sse sse_mock; default json_mock; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      if ($geo_deny) { return 451; }
      limit_req zone=perkey burst=1000000 nodelay;
      proxy_pass http://$bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`
}

export function writeText (file: string, text: string): string {
  writeFileSync(file, text)
  return file
}
