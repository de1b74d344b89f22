import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { parseConfig } from '../../src/config/load.js'
import type { Config } from '../../src/config/schema/index.js'
import { createRuntime, closeRuntime, type Runtime, type RuntimeOverrides } from '../../src/runtime.js'
import { buildApp } from '../../src/http/app.js'
import { buildAdmin } from '../../src/admin/index.js'

/** Raw test keys: test-key-tier1 (id k1, tier1, US), test-key-tier2 (id k2, tier2); admin: test-admin, auditor: test-auditor. */
/** A minimal valid configuration for tests; `patch` is merged over it (top-level sections replaced). */
export function baseConfig (backendUrl = 'http://127.0.0.1:9', patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { trustedProxies: [] },
    backends: { gpu: { url: backendUrl, region: 'US' } },
    models: { 'llama-3.1-8b': { backend: 'gpu', classification: 'EAR99' }, 'frontier-1': { backend: 'gpu', classification: '4E091' } },
    locations: { tiers: { embargoed: ['CU', 'IR', 'KP', 'SY', 'UA-43'], tier1: ['US', 'GB', 'DE'] }, default: 'tier2', unknown: 'tier1', anonymizers: 'embargoed' },
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat', 'completions', 'embeddings', 'tools', 'streaming'] },
      tier2: { models: ['llama-*'], capabilities: ['chat', 'embeddings', 'streaming'], maxOutputTokens: 1024 },
      embargoed: { deny: true }
    },
    keys: [
      { id: 'k1', sha256: sha('test-key-tier1'), org: 'Org One', tier: 'tier1', country: 'US' },
      { id: 'k2', sha256: sha('test-key-tier2'), org: 'Org Two', tier: 'tier2' }
    ],
    admin: { tokens: [{ sha256: sha('test-admin'), role: 'admin' }, { sha256: sha('test-auditor'), role: 'auditor' }] },
    log: { level: 'silent' },
    ...patch
  }
}

export function sha (s: string): string { return createHash('sha256').update(s).digest('hex') }

export interface TestGateway {
  rt: Runtime
  app: FastifyInstance
  admin: FastifyInstance
  dir: string
  close (): Promise<void>
}

/** Build (not listen) a gateway on a config object, with its audit dir in a fresh temp directory. */
export async function buildTestGateway (raw: Record<string, unknown>, overrides: RuntimeOverrides = {}): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-test-'))
  const audit = { dir: join(dir, 'audit'), ...(raw.audit as object | undefined) }
  const config: Readonly<Config> = parseConfig({ ...raw, audit })
  const rt = await createRuntime(config, dir, pino({ level: 'silent' }), overrides)
  const app = await buildApp(rt)
  const admin = await buildAdmin(rt)
  return {
    rt,
    app,
    admin,
    dir,
    async close () {
      await app.close()
      await admin.close()
      await closeRuntime(rt)
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export interface Upstream { url: string, server: Server, requests: Array<{ method: string, url: string, headers: IncomingMessage['headers'], body: string }>, close (): Promise<void> }

/** A real HTTP server on port 0 standing in for a backend. */
export async function startUpstream (handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<Upstream> {
  const requests: Upstream['requests'] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      handler(req, res, body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}

type Teardown = { teardown: (fn: () => Promise<void>) => void }

/**
 * The usual set-up: a real upstream on port 0 answering with `handler`, a gateway on baseConfig pointing at it
 * (`patch` merged over it; a function gets the upstream's URL), both closed at the test's end.
 */
export async function gatewayWithUpstream (
  t: Teardown,
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
  patch: Record<string, unknown> | ((url: string) => Record<string, unknown>) = {},
  overrides: RuntimeOverrides = {}
): Promise<{ up: Upstream, gw: TestGateway }> {
  const up = await startUpstream(handler)
  const gw = await buildTestGateway(baseConfig(up.url, typeof patch === 'function' ? patch(up.url) : patch), overrides).catch(async (err: unknown) => { await up.close(); throw err })
  t.teardown(async () => { await gw.close(); await up.close() })
  return { up, gw }
}
