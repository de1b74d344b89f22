/*
 * Shared pieces of the reliability suite (test/reliability/). These tests treat the gateway as a black box: they
 * spawn the built CLI, talk to it over HTTP and raw sockets, and read the audit directory as files. Nothing here
 * imports from src/, so the suite keeps holding the product to its contract while the code behind it moves.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, request as httpRequest, Agent, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { CLI, ROOT, runCli } from './process.js'

export function sha (s: string): string { return createHash('sha256').update(s).digest('hex') }

/** Raw keys of the generated configuration (test only): k1 on tier1, k2 on tier2. Admin token: test-admin. */
export const KEY1 = 'test-key-tier1'
export const KEY2 = 'test-key-tier2'
export const ADMIN_TOKEN = 'test-admin'

/** A temp directory removed in teardown (the caller registers `cleanup`). */
export async function tempDir (name: string): Promise<{ dir: string, cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `geogate-rel-${name}-`))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}

/**
 * A whole configuration for a spawned gateway: one backend, two models, loopback callers on tier1 (`internal`),
 * unknown locations embargoed, every interaction in scope (`audit.scope: all`) on writer `gw-1`.
 * `patch` replaces top-level sections.
 */
export function gatewayConfig (backendUrl: string, auditDir: string, patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, trustedProxies: [], shutdownGraceMs: 5_000 },
    backends: { gpu: { url: backendUrl, region: 'US' } },
    models: { 'llama-3.1-8b': { backend: 'gpu', classification: 'EAR99' }, 'frontier-1': { backend: 'gpu', classification: '4E091' } },
    locations: { tiers: { embargoed: ['CU', 'IR', 'KP', 'SY', 'UA-43'], tier1: ['US', 'GB', 'DE'] }, default: 'tier2', unknown: 'embargoed', anonymizers: 'embargoed', internal: 'tier1' },
    tiers: {
      tier1: { models: ['*'], capabilities: ['chat', 'completions', 'embeddings', 'tools', 'streaming'] },
      tier2: { models: ['llama-*'], capabilities: ['chat', 'completions', 'embeddings', 'streaming'], maxOutputTokens: 1024 },
      embargoed: { deny: true }
    },
    keys: [
      { id: 'k1', sha256: sha(KEY1), org: 'Org One', tier: 'tier1', country: 'US' },
      { id: 'k2', sha256: sha(KEY2), org: 'Org Two', tier: 'tier2' }
    ],
    admin: { tokens: [{ sha256: sha(ADMIN_TOKEN), role: 'admin' }, { sha256: sha('test-auditor'), role: 'auditor' }] },
    audit: { dir: auditDir, scope: 'all', writerId: 'gw-1' },
    log: { level: 'info' },
    ...patch
  }
}

/** Write a configuration (JSON is YAML) and return its path. */
export async function writeConfig (dir: string, cfg: Record<string, unknown>, name = 'geogate.json'): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, JSON.stringify(cfg, null, 2))
  return file
}

// ───────────────────────────── the counting backend ─────────────────────────────

export interface Received { id: string, method: string, url: string, body: string, at: number }

export interface BackendOptions {
  /** how long a non-streamed answer takes, ms: a number or [min, max] picked at random per request */
  delayMs?: number | [number, number]
  /** answer streams (`"stream": true`) with this many chunks, `chunkMs` apart */
  chunks?: number
  chunkMs?: number
  /** full control: return true when the request was handled */
  handle?: (req: IncomingMessage, res: ServerResponse, body: string) => boolean
}

export interface CountingBackend {
  url: string
  port: number
  server: Server
  /** x-request-id -> how many times it arrived (counted on arrival of the headers, before any answer) */
  counts: Map<string, number>
  /** every request, in order of complete arrival */
  requests: Received[]
  /** ids that arrived more than once */
  twice (): string[]
  close (): Promise<void>
}

function pick (d: number | [number, number]): number {
  return typeof d === 'number' ? d : d[0] + Math.random() * (d[1] - d[0])
}

/**
 * An OpenAI-compatible stand-in on port 0 that counts every request it receives by x-request-id — at the moment
 * its headers arrive, so a request counts as received even if the gateway dies before the body is through.
 */
export async function countingBackend (o: BackendOptions = {}, port = 0): Promise<CountingBackend> {
  const counts = new Map<string, number>()
  const requests: Received[] = []
  const server = createServer((req, res) => {
    const id = String(req.headers['x-request-id'] ?? '')
    counts.set(id, (counts.get(id) ?? 0) + 1)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('error', () => {})
    res.on('error', () => {})
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      requests.push({ id, method: req.method ?? '', url: req.url ?? '', body, at: Date.now() })
      if (o.handle?.(req, res, body) === true) return
      let parsed: { stream?: boolean } = {}
      try { parsed = JSON.parse(body) as { stream?: boolean } } catch {}
      if (parsed.stream === true) {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        let n = 0
        const tick = setInterval(() => {
          if (res.destroyed) { clearInterval(tick); return }
          if (++n <= (o.chunks ?? 3)) { res.write(`data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n`); return }
          clearInterval(tick)
          res.write('data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}\n\n')
          res.end('data: [DONE]\n\n')
        }, o.chunkMs ?? 10)
        return
      }
      const answer = (): void => {
        if (res.destroyed) return
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))
      }
      const d = pick(o.delayMs ?? 0)
      if (d <= 0) answer(); else setTimeout(answer, d)
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const p = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${p}`,
    port: p,
    server,
    counts,
    requests,
    twice: () => [...counts].filter(([, n]) => n > 1).map(([id]) => id),
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}

// ───────────────────────────── the spawned gateway ─────────────────────────────

export interface Gateway {
  child: ChildProcess
  pid: number
  url: string
  adminUrl: string
  port: number
  adminPort: number
  /** warnings and errors from its log, and the last lines of anything else (bounded: a soak logs a lot) */
  tail: string[]
  exited: Promise<number | null>
  kill (signal?: NodeJS.Signals): void
  /** SIGKILL and wait for the exit */
  crash (): Promise<void>
  /** SIGTERM and wait for the exit code; past `withinMs`, SIGKILL and resolve 'hung' */
  stop (withinMs?: number): Promise<number | null | 'hung'>
}

/**
 * `geogate serve --config FILE`, the built CLI. Unlike spawnGateway it keeps no per-request log lines (only a
 * bounded tail), so a long run under load does not grow the test process.
 */
export async function startGateway (configFile: string, env: NodeJS.ProcessEnv = {}): Promise<Gateway> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile, '--workers', '1'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const tail: string[] = []
  const keep = (s: string): void => { tail.push(s); if (tail.length > 200) tail.splice(0, tail.length - 200) }
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (text) => {
      if (text.includes('"geogate listening"')) {
        try { resolve(JSON.parse(text) as Record<string, unknown>) } catch (err) { reject(err) }
        return
      }
      // pino levels: 40 warn, 50 error, 60 fatal; request lines are 30 and are dropped
      if (/"level":(4|5|6)0/.test(text)) keep(text)
    })
    createInterface({ input: child.stderr }).on('line', keep)
    void exited.then((code) => { reject(new Error(`gateway exited (${String(code)}) before listening:\n${tail.join('\n')}`)) })
  })
  const l = await listening
  const url = String(l.url)
  const adminUrl = String(l.adminUrl)
  const kill = (signal: NodeJS.Signals = 'SIGTERM'): void => { if (child.exitCode === null && child.signalCode === null) child.kill(signal) }
  return {
    child,
    pid: child.pid ?? 0,
    url,
    adminUrl,
    port: Number(new URL(url).port),
    adminPort: Number(new URL(adminUrl).port),
    tail,
    exited,
    kill,
    async crash () { kill('SIGKILL'); await exited },
    async stop (withinMs = 15_000) {
      kill('SIGTERM')
      let timer: NodeJS.Timeout | undefined
      const hung = new Promise<'hung'>((resolve) => { timer = setTimeout(() => { resolve('hung') }, withinMs) })
      const r = await Promise.race([exited, hung])
      clearTimeout(timer)
      if (r === 'hung') { kill('SIGKILL'); await exited }
      return r
    }
  }
}

// ───────────────────────────── HTTP from the outside ─────────────────────────────

export interface Answer { status: number, headers: IncomingMessage['headers'], body: string, ms: number }

export interface CallOptions {
  method?: string
  headers?: Record<string, string>
  body?: unknown
  agent?: Agent
  /** give up (status 0) after this long */
  timeoutMs?: number
}

/** One HTTP request; a network error or timeout is status 0 (the caller decides whether that is acceptable). */
export async function call (base: string, path: string, o: CallOptions = {}): Promise<Answer> {
  const start = Date.now()
  const payload = o.body === undefined ? undefined : (typeof o.body === 'string' ? o.body : JSON.stringify(o.body))
  const headers: Record<string, string> = { ...o.headers }
  if (payload !== undefined) {
    headers['content-type'] ??= 'application/json'
    headers['content-length'] = String(Buffer.byteLength(payload))
  }
  return await new Promise((resolve) => {
    let done = false
    const finish = (a: Omit<Answer, 'ms'>): void => { if (!done) { done = true; resolve({ ...a, ms: Date.now() - start }) } }
    const req = httpRequest(base + path, { method: o.method ?? (payload === undefined ? 'GET' : 'POST'), headers, agent: o.agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { finish({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }) })
      res.on('error', () => { finish({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }) })
      res.on('aborted', () => { finish({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }) })
    })
    if (o.timeoutMs !== undefined) req.setTimeout(o.timeoutMs, () => { req.destroy(new Error('timeout')) })
    req.on('error', () => { finish({ status: 0, headers: {}, body: '' }) })
    req.end(payload)
  })
}

export function chatBody (model = 'llama-3.1-8b', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model, messages: [{ role: 'user', content: 'hi' }], ...extra }
}

/** A chat completion with key and request id. */
export async function chat (base: string, id: string, o: { key?: string, body?: unknown, agent?: Agent, timeoutMs?: number, headers?: Record<string, string> } = {}): Promise<Answer> {
  return await call(base, '/v1/chat/completions', {
    headers: { authorization: `Bearer ${o.key ?? KEY1}`, 'x-request-id': id, ...o.headers },
    body: o.body ?? chatBody(),
    agent: o.agent,
    timeoutMs: o.timeoutMs
  })
}

export function errorCode (a: Answer): string | null {
  try { return (JSON.parse(a.body) as { error?: { code?: string } }).error?.code ?? null } catch { return null }
}

/** GET on the admin plane with the admin token. */
export async function admin (adminUrl: string, path: string, o: CallOptions = {}): Promise<Answer> {
  return await call(adminUrl, path, { ...o, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...o.headers } })
}

/** Sum of every sample of a Prometheus metric (all label sets); null when the metric is absent. */
export function metricValue (text: string, name: string): number | null {
  let sum: number | null = null
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line)
    if (m === null || m[1] !== name) continue
    sum = (sum ?? 0) + Number(m[3])
  }
  return sum
}

// ───────────────────────────── raw sockets ─────────────────────────────

export interface RawExchange {
  /** everything the server sent before it closed or the wait ended */
  text: string
  /** status codes of every response in it, in order */
  statuses: number[]
  /** the server closed the connection (rather than the wait running out) */
  closed: boolean
  ms: number
}

/** Write bytes on a fresh connection and collect what comes back until the server closes, or `waitMs`. */
export async function rawExchange (port: number, bytes: string | Buffer, waitMs = 3000): Promise<RawExchange> {
  const start = Date.now()
  return await new Promise((resolve) => {
    const chunks: Buffer[] = []
    let closed = false
    const s = connect(port, '127.0.0.1', () => { s.write(bytes) })
    const timer = setTimeout(() => { s.destroy() }, waitMs)
    s.on('data', (c: Buffer) => chunks.push(c))
    s.on('error', () => {})
    s.on('end', () => { closed = true })
    s.on('close', () => {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString('latin1')
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))
      resolve({ text, statuses, closed, ms: Date.now() - start })
    })
  })
}

// ───────────────────────────── the audit directory, as files ─────────────────────────────

/** Segment file names (segments.ts): `<writer>_<YYYYMMDD>_<first seq, 12 digits>.jsonl`. */
const SEGMENT = /^([A-Za-z0-9.-]+)_(\d{8})_(\d{12})\.jsonl$/

export interface AuditLine {
  kind: string
  requestId?: string
  decision?: string
  outcome?: string
  status?: number | null
  rule?: string
  country?: string | null
  locationTier?: string | null
  model?: string | null
  endpoint?: string | null
  event?: string
  detail?: Record<string, unknown>
  writer: string
  seq: number
  [k: string]: unknown
}

export interface AuditContents {
  /** every interaction record, by requestId (more than one: a duplicate) */
  byId: Map<string, AuditLine[]>
  interactions: AuditLine[]
  system: AuditLine[]
  /** lines that did not parse (a torn tail before recovery) */
  damaged: number
}

/** Every record of every writer's segments in `dir` (read as files; torn lines counted, not parsed). */
export async function readAudit (dir: string): Promise<AuditContents> {
  const byId = new Map<string, AuditLine[]>()
  const interactions: AuditLine[] = []
  const system: AuditLine[] = []
  let damaged = 0
  const files = (await readdir(dir)).filter((f) => SEGMENT.test(f)).sort()
  for (const f of files) {
    const text = await readFile(join(dir, f), 'utf8')
    for (const line of text.split('\n')) {
      if (line === '') continue
      let r: AuditLine
      try { r = JSON.parse(line) as AuditLine } catch { damaged++; continue }
      if (r.kind === 'interaction' && typeof r.requestId === 'string') {
        interactions.push(r)
        const list = byId.get(r.requestId)
        if (list === undefined) byId.set(r.requestId, [r]); else list.push(r)
      } else if (r.kind === 'system') system.push(r)
    }
  }
  return { byId, interactions, system, damaged }
}

export interface Completeness {
  /** ids the backend received */
  received: number
  /** of those, with exactly one record */
  recorded: number
  /** received by the backend, no record at all */
  missing: string[]
  /** any id with more than one interaction record */
  duplicated: string[]
  /** received by the backend, recorded as outcome unknown (recovery) */
  unknown: number
}

/** The suite's one question: every request the backend received has exactly one record, none twice. */
export function completeness (received: Iterable<string>, audit: AuditContents): Completeness {
  const missing: string[] = []
  let recorded = 0
  let unknown = 0
  let n = 0
  for (const id of received) {
    n++
    const recs = audit.byId.get(id)
    if (recs === undefined) { missing.push(id); continue }
    if (recs.length === 1) recorded++
    if (recs.some((r) => r.outcome === 'unknown')) unknown++
  }
  const duplicated = [...audit.byId].filter(([, recs]) => recs.length > 1).map(([id]) => id)
  return { received: n, recorded, missing, duplicated, unknown }
}

export function describe (c: Completeness, sent?: number): string {
  return `${sent === undefined ? '' : `sent ${sent}, `}received by the backend ${c.received}, recorded ${c.recorded} (${c.unknown} outcome unknown), missing ${c.missing.length}, duplicated ${c.duplicated.length}`
}

/** `geogate audit verify DIR` as a process. */
export async function auditVerify (dir: string): Promise<{ ok: boolean, output: string }> {
  const r = await runCli(['audit', 'verify', dir])
  return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() }
}

// ───────────────────────────── privileges ─────────────────────────────

export function isRoot (): boolean { return typeof process.getuid === 'function' && process.getuid() === 0 }

/**
 * Why a test that needs root (mounts) cannot run here, or null when it can. Only a non-root run outside CI may
 * skip; under CI=true a missing capability is a failure, never a quiet pass.
 */
export function rootSkipReason (): { skip: string } | { fail: string } | null {
  if (isRoot()) return null
  if (process.env.CI === 'true') return { fail: 'CI=true but not running as root: this scenario mounts filesystems and cannot run' }
  return { skip: 'needs root to mount a small filesystem for the audit dir (CI runs as root)' }
}

/** Run a command to completion; rejects with its output on a non-zero exit. */
export async function sh (cmd: string, args: string[]): Promise<string> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', (c: Buffer) => { out += c.toString() })
  const [code] = await once(child, 'close') as [number | null]
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${out.trim()}`)
  return out
}

/** A keep-alive agent for load, destroyed by the caller. */
export function loadAgent (maxSockets = 32): Agent { return new Agent({ keepAlive: true, maxSockets }) }
