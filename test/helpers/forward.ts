import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import type { AuditEntry } from '../../src/audit/types.js'
import type { TestGateway } from './gateway.js'

/** Watches a test gateway: the requests it saw (with their ctx) and the audit entries it appended. */
export interface Observed {
  requests: FastifyRequest[]
  audited: AuditEntry[]
  /** resolves once `n` audit entries have been appended */
  auditedCount (n: number): Promise<void>
}

/** Must be called before the app listens (hooks are added). The real audit log still gets every entry. */
export function observe (gw: TestGateway): Observed {
  const requests: FastifyRequest[] = []
  const audited: AuditEntry[] = []
  const waiters: Array<{ n: number, resolve: () => void }> = []
  gw.app.addHook('onRequest', async (request) => { requests.push(request) })
  const audit = gw.rt.audit
  const append = audit.append.bind(audit)
  audit.append = (entry: AuditEntry): void => {
    audited.push(entry)
    append(entry)
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]
      if (w !== undefined && audited.length >= w.n) { waiters.splice(i, 1); w.resolve() }
    }
  }
  return {
    requests,
    audited,
    async auditedCount (n) {
      if (audited.length >= n) return
      await new Promise<void>((resolve) => { waiters.push({ n, resolve }) })
    }
  }
}

export async function listen (gw: TestGateway): Promise<string> {
  return await gw.app.listen({ host: '127.0.0.1', port: 0 })
}

export interface Answer { status: number, headers: IncomingMessage['headers'], text: string }

/** One request with node:http (which, unlike fetch, lets a test send hop-by-hop headers). */
export async function send (base: string, path: string, opts: { method?: string, headers?: OutgoingHttpHeaders, body?: string | Buffer } = {}): Promise<Answer> {
  const res = await open(base, path, opts)
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  return { status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }
}

/** Send a request and resolve with the response as soon as its headers arrive. */
export async function open (base: string, path: string, opts: { method?: string, headers?: OutgoingHttpHeaders, body?: string | Buffer } = {}): Promise<IncomingMessage> {
  return await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(base + path, { method: opts.method ?? 'POST', headers: opts.headers, agent: false }, resolve)
    req.on('error', reject)
    req.end(opts.body)
  })
}

export function chat (model: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra })
}

export const TIER1 = { authorization: 'Bearer test-key-tier1', 'content-type': 'application/json' }

/** The `data:` payloads of an SSE text, [DONE] excluded, parsed. */
export function sseData (text: string): Array<Record<string, unknown>> {
  return text.split('\n').filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]').map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>)
}

/** The first body chunk; the stream is paused right after it, so a later `for await` loses nothing. */
export async function firstChunk (res: IncomingMessage): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    res.once('error', reject)
    res.once('data', (c: Buffer) => { res.pause(); resolve(c.toString('utf8')) })
  })
}
