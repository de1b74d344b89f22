import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { countTokens, embedding, promptText, seedOf, token } from './generate.js'

/*
 * The mock accelerator: an OpenAI-compatible server with the timing of a real one (time to first token,
 * then one token per inter-token delay), so the gateway can be started, demonstrated and tested end to end
 * without a GPU. It speaks the subset of the API vLLM serves: chat/completions, completions, embeddings,
 * models, health.
 */

export interface MockOptions {
  host?: string
  port?: number
  /** delay before the first token (prefill) */
  ttftMs?: number
  /** delay between two tokens (decode) */
  itlMs?: number
  /** answer length when the request sets no max_tokens */
  defaultMaxTokens?: number
  /** when set, requests must carry `Authorization: Bearer <apiKey>` (as vLLM --api-key) */
  apiKey?: string | undefined
  /** names listed by /v1/models; any name is served */
  models?: string[]
  log?: Logger
}

export interface MockBackend {
  url: string
  server: Server
  close (): Promise<void>
}

const MAX_BODY = 8 * 1024 * 1024
const MAX_TOKENS_CAP = 4096

interface Job {
  kind: 'chat' | 'text'
  id: string
  model: string
  seed: number
  promptTokens: number
  maxTokens: number
  stream: boolean
  includeUsage: boolean
  /** the request offered tools (and did not say tool_choice "none"): the answer is a call of one of them */
  tool: { name: string, arguments: string } | null
}

/** A placeholder value of the JSON Schema type asked for, so the arguments of a mock tool call validate. */
function sampleOf (schema: unknown): unknown {
  const s = schema !== null && typeof schema === 'object' ? schema as Record<string, unknown> : {}
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0]
  switch (s.type) {
    case 'string': return 'mock'
    case 'integer': case 'number': return 1
    case 'boolean': return true
    case 'array': return []
    case 'object': {
      const props = s.properties !== null && typeof s.properties === 'object' ? s.properties as Record<string, unknown> : {}
      return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, sampleOf(v)]))
    }
    default: return null
  }
}

/**
 * The tool a chat request's answer calls: the one tool_choice names, else the first offered. Arguments are a
 * placeholder of each parameter's type (strings "mock", numbers 1, booleans true), deterministic, as JSON text.
 */
function toolCallOf (body: Record<string, unknown>): { name: string, arguments: string } | null {
  const tools = Array.isArray(body.tools) ? body.tools as Array<{ type?: unknown, function?: { name?: unknown, parameters?: unknown } }> : []
  const fns = tools.filter((t) => t !== null && typeof t === 'object' && t.type === 'function' && typeof t.function?.name === 'string')
  if (fns.length === 0 || body.tool_choice === 'none') return null
  const choice = body.tool_choice as { function?: { name?: unknown } } | undefined
  const wanted = typeof choice === 'object' && choice !== null ? choice.function?.name : undefined
  const fn = fns.find((t) => t.function?.name === wanted) ?? fns[0]
  return { name: String(fn?.function?.name), arguments: JSON.stringify(sampleOf(fn?.function?.parameters ?? { type: 'object' }) ?? {}) }
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) })
  res.end(s)
}

function sendError (res: ServerResponse, status: number, message: string, type = 'invalid_request_error'): void {
  sendJson(res, status, { error: { message, type, code: null, param: null } })
}

function intOr (v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : fallback
}

class Mock {
  readonly opts: Required<Omit<MockOptions, 'apiKey' | 'log'>> & { apiKey: string | undefined, log: Logger | undefined }
  #next = 0

  constructor (o: MockOptions) {
    this.opts = {
      host: o.host ?? '127.0.0.1',
      port: o.port ?? 8000,
      ttftMs: o.ttftMs ?? 150,
      itlMs: o.itlMs ?? 20,
      defaultMaxTokens: o.defaultMaxTokens ?? 16,
      apiKey: o.apiKey,
      models: o.models ?? ['llama-3.1-8b', 'frontier-1'],
      log: o.log
    }
  }

  handle (req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (path === '/health' || path === '/healthz') { res.writeHead(200).end(); return }
    if (this.opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.opts.apiKey}`) {
      req.resume()
      sendError(res, 401, 'Invalid or missing API key', 'authentication_error')
      return
    }
    if (req.method === 'GET' && path === '/v1/models') {
      sendJson(res, 200, { object: 'list', data: this.opts.models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'mock' })) })
      return
    }
    if (req.method !== 'POST' || !['/v1/chat/completions', '/v1/completions', '/v1/embeddings'].includes(path)) {
      req.resume()
      sendError(res, 404, `No route ${req.method ?? ''} ${path}`)
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) { sendError(res, 413, 'Body too large'); req.destroy(); return }
      chunks.push(c)
    })
    req.on('end', () => {
      if (res.headersSent) return
      let body: Record<string, unknown>
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'))
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
        body = parsed as Record<string, unknown>
      } catch {
        sendError(res, 400, 'Body must be a JSON object')
        return
      }
      if (typeof body.model !== 'string') { sendError(res, 400, '`model` is required'); return }
      if (path === '/v1/embeddings') { this.embeddings(body, res); return }
      this.generate(path === '/v1/chat/completions' ? 'chat' : 'text', body, res)
    })
  }

  embeddings (body: Record<string, unknown>, res: ServerResponse): void {
    const input = body.input
    const items = Array.isArray(input) ? input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))) : [typeof input === 'string' ? input : '']
    const dims = Math.min(intOr(body.dimensions, 16), 4096) || 16
    let tokens = 0
    const data = items.map((text, index) => {
      tokens += countTokens(text)
      return { object: 'embedding', index, embedding: embedding(text, dims) }
    })
    setTimeout(() => {
      sendJson(res, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } })
    }, this.opts.ttftMs)
  }

  generate (kind: Job['kind'], body: Record<string, unknown>, res: ServerResponse): void {
    const text = promptText(body)
    const so = body.stream_options
    const job: Job = {
      kind,
      id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-mock-${++this.#next}`,
      model: body.model as string,
      seed: seedOf(text),
      promptTokens: countTokens(text),
      maxTokens: Math.min(intOr(body.max_completion_tokens, intOr(body.max_tokens, this.opts.defaultMaxTokens)), MAX_TOKENS_CAP),
      stream: body.stream === true,
      includeUsage: so !== null && typeof so === 'object' && (so as Record<string, unknown>).include_usage === true,
      tool: kind === 'chat' ? toolCallOf(body) : null
    }
    if (job.tool !== null) job.maxTokens = Math.max(1, countTokens(job.tool.arguments))
    if (job.stream) this.stream(job, res)
    else this.whole(job, res)
  }

  usage (job: Job): { prompt_tokens: number, completion_tokens: number, total_tokens: number } {
    return { prompt_tokens: job.promptTokens, completion_tokens: job.maxTokens, total_tokens: job.promptTokens + job.maxTokens }
  }

  whole (job: Job, res: ServerResponse): void {
    // A non-streamed answer is ready once every token is generated.
    const delay = this.opts.ttftMs + this.opts.itlMs * Math.max(0, job.maxTokens - 1)
    const timer = setTimeout(() => {
      let content = ''
      for (let i = 0; i < job.maxTokens; i++) content += token(job.seed, i)
      const created = Math.floor(Date.now() / 1000)
      const call = job.tool
      const choice = call !== null
        ? { index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: `call_${job.id}`, type: 'function', function: call }] }, logprobs: null, finish_reason: 'tool_calls' }
        : job.kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: 'length' }
        : { index: 0, text: content, logprobs: null, finish_reason: 'length' }
      sendJson(res, 200, { id: job.id, object: job.kind === 'chat' ? 'chat.completion' : 'text_completion', created, model: job.model, choices: [choice], usage: this.usage(job) })
    }, delay)
    res.once('close', () => { clearTimeout(timer) })
  }

  stream (job: Job, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.flushHeaders()
    const created = Math.floor(Date.now() / 1000)
    const object = job.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'
    const extra = job.includeUsage ? { usage: null } : {}
    const send = (choices: unknown[], more: Record<string, unknown> = extra): void => {
      res.write(`data: ${JSON.stringify({ id: job.id, object, created, model: job.model, choices, ...more })}\n\n`)
    }
    let i = 0
    let timer: NodeJS.Timeout | null = null
    const call = job.tool
    if (call !== null) {
      // a tool call streams as OpenAI does: the call's id and name first, then its arguments in pieces
      const pieces = call.arguments.match(/.{1,8}/gs) ?? ['']
      const toolStep = (): void => {
        timer = null
        if (res.destroyed) return
        if (i === 0) {
          send([{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: `call_${job.id}`, type: 'function', function: { name: call.name, arguments: '' } }] }, logprobs: null, finish_reason: null }])
        }
        if (i < pieces.length) {
          send([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: pieces[i] } }] }, logprobs: null, finish_reason: null }])
          i++
          if (i < pieces.length) { timer = setTimeout(toolStep, this.opts.itlMs); return }
        }
        send([{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }])
        if (job.includeUsage) send([], { usage: this.usage(job) })
        res.end('data: [DONE]\n\n')
      }
      timer = setTimeout(toolStep, this.opts.ttftMs)
      res.once('close', () => { if (timer !== null) clearTimeout(timer) })
      return
    }
    const step = (): void => {
      timer = null
      if (res.destroyed) return
      if (i === 0 && job.kind === 'chat') send([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }])
      if (i < job.maxTokens) {
        const t = token(job.seed, i)
        send([job.kind === 'chat' ? { index: 0, delta: { content: t }, logprobs: null, finish_reason: null } : { index: 0, text: t, logprobs: null, finish_reason: null }])
        i++
        if (i < job.maxTokens) { timer = setTimeout(step, this.opts.itlMs); return }
      }
      send([job.kind === 'chat' ? { index: 0, delta: {}, logprobs: null, finish_reason: 'length' } : { index: 0, text: '', logprobs: null, finish_reason: 'length' }])
      if (job.includeUsage) send([], { usage: this.usage(job) })
      res.end('data: [DONE]\n\n')
    }
    timer = setTimeout(step, this.opts.ttftMs)
    // The caller (the gateway) went away: stop generating, as vLLM aborts the sequence.
    res.once('close', () => { if (timer !== null) clearTimeout(timer) })
  }
}

export async function startMockBackend (o: MockOptions = {}): Promise<MockBackend> {
  const mock = new Mock(o)
  const server = createServer({ keepAliveTimeout: 75_000 }, (req, res) => { mock.handle(req, res) })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(mock.opts.port, mock.opts.host, () => { server.off('error', reject); resolve() })
  })
  const { port } = server.address() as AddressInfo
  const host = mock.opts.host.includes(':') ? `[${mock.opts.host}]` : mock.opts.host
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`
  mock.opts.log?.info({ url, ttftMs: mock.opts.ttftMs, itlMs: mock.opts.itlMs }, 'mock backend listening')
  return {
    url,
    server,
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
