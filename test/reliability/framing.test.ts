/*
 * Framing and header attacks over raw sockets, against a spawned gateway (issue 10).
 *
 * Request smuggling ("what held": keep it holding): each framing below is ambiguous or malformed, and carries a
 * second request in its body. It must be answered 400 or the connection closed; the backend must never receive
 * the smuggled request, nor any request twice.
 *
 * Forwarding-header junk from a trusted peer: the README promises that junk at the trust boundary, and
 * X-Forwarded-For disagreeing with Forwarded, make the location unknown — never the proxy's own. The proxy here
 * is the loopback peer, whose own tier is `internal: tier1`; `unknown` is embargoed (451).
 *
 * Real addresses of the embedded database: 8.8.8.8 US, 152.206.0.1 CU.
 */
import t from 'tap'
import { join } from 'node:path'
import {
  countingBackend, gatewayConfig, KEY1, rawExchange, readAudit, startGateway, tempDir, writeConfig, type Gateway
} from '../helpers/reliability.js'
import { rawRequest } from '../helpers/raw-http.js'

const US = '8.8.8.8'
const CU = '152.206.0.1'

function json (id: string): string {
  return JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: id }] })
}

function head (lines: string[]): string { return lines.join('\r\n') + '\r\n\r\n' }

const START = ['POST /v1/chat/completions HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${KEY1}`, 'Content-Type: application/json']

/** The request a smuggling attempt hides in a body: if it is ever forwarded, the backend sees its id. */
function smuggled (id: string): string {
  const body = json(id)
  return head(['POST /v1/chat/completions HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${KEY1}`, `x-request-id: ${id}`, 'Content-Type: application/json', `Content-Length: ${body.length}`]) + body
}

function chunked (body: string): string { return `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n` }

interface Framing { name: string, bytes (id: string, hidden: string): string }

const framings: Framing[] = [
  {
    name: 'Content-Length and Transfer-Encoding (CL.TE)',
    bytes: (id, hidden) => { const b = chunked(json(id)); return head([...START, `x-request-id: ${id}`, `Content-Length: ${b.length}`, 'Transfer-Encoding: chunked']) + b + hidden }
  },
  {
    name: 'Transfer-Encoding then Content-Length (TE.CL)',
    bytes: (id, hidden) => { const b = chunked(json(id)); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding: chunked', 'Content-Length: 4']) + b + hidden }
  },
  {
    name: 'two Content-Length headers that disagree',
    bytes: (id, hidden) => { const b = json(id); return head([...START, `x-request-id: ${id}`, `Content-Length: ${b.length}`, `Content-Length: ${b.length + hidden.length}`]) + b + hidden }
  },
  {
    name: 'one Content-Length line with two different values',
    bytes: (id, hidden) => { const b = json(id); return head([...START, `x-request-id: ${id}`, `Content-Length: ${b.length}, ${b.length + hidden.length}`]) + b + hidden }
  },
  {
    name: 'Content-Length with a sign',
    bytes: (id, hidden) => { const b = json(id); return head([...START, `x-request-id: ${id}`, `Content-Length: +${b.length}`]) + b + hidden }
  },
  {
    name: 'Transfer-Encoding: xchunked with Content-Length',
    bytes: (id, hidden) => { const b = chunked(json(id)); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding: xchunked', `Content-Length: ${b.length}`]) + b + hidden }
  },
  {
    name: 'space before the colon: "Transfer-Encoding : chunked"',
    bytes: (id, hidden) => { const b = chunked(json(id)); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding : chunked', `Content-Length: ${b.length}`]) + b + hidden }
  },
  {
    name: 'obs-fold: Transfer-Encoding value on a continuation line',
    bytes: (id, hidden) => { const b = chunked(json(id)); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding:', ' chunked', `Content-Length: ${b.length}`]) + b + hidden }
  },
  {
    name: 'vertical tab before chunked',
    bytes: (id, hidden) => { const b = chunked(json(id)); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding:\x0bchunked', `Content-Length: ${b.length}`]) + b + hidden }
  },
  {
    name: 'chunked not the last transfer coding',
    bytes: (id, hidden) => { const b = chunked(json(id)); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding: chunked, identity']) + b + hidden }
  },
  {
    name: 'two Transfer-Encoding lines, the last not chunked',
    bytes: (id, hidden) => { const b = chunked(json(id)); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding: chunked', 'Transfer-Encoding: identity']) + b + hidden }
  },
  {
    name: 'chunk size that is not hex',
    bytes: (id, hidden) => { const b = json(id); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding: chunked']) + `0x${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n` + hidden }
  },
  {
    name: 'bare LF after the chunk size',
    bytes: (id, hidden) => { const b = json(id); return head([...START, `x-request-id: ${id}`, 'Transfer-Encoding: chunked']) + `${b.length.toString(16)}\n${b}\r\n0\r\n\r\n` + hidden }
  },
  {
    name: 'NUL byte in a header value',
    bytes: (id, hidden) => { const b = json(id); return head([...START, `x-request-id: ${id}`, `Content-Length: ${b.length}`, 'X-Junk: a\x00b']) + b + hidden }
  }
]

t.test('request smuggling framings: 400 or closed, nothing forwarded twice, the hidden request never', async (t) => {
  const backend = await countingBackend()
  t.teardown(backend.close)
  const { dir, cleanup } = await tempDir('framing')
  t.teardown(cleanup)
  let gw: Gateway | null = await startGateway(await writeConfig(dir, gatewayConfig(backend.url, join(dir, 'audit'))))
  t.teardown(() => { gw?.kill('SIGKILL') })
  const g = gw

  // the control: the same request framed properly is served
  const ok = await rawExchange(g.port, head([...START, 'x-request-id: control', 'Connection: close', `Content-Length: ${json('control').length}`]) + json('control'))
  t.same(ok.statuses, [200], 'a well-framed request is served')

  for (const [i, f] of framings.entries()) {
    const id = `framing-${i}`
    const hidden = `smuggled-${i}`
    const r = await rawExchange(g.port, f.bytes(id, smuggled(hidden)), 2000)
    const answered = r.statuses.length === 0 ? 'closed without an answer' : r.statuses.join(', ')
    t.ok(r.statuses.length === 0 ? r.closed : r.statuses.every((s) => s === 400), `${f.name}: 400 or closed (got ${answered}${r.closed ? '' : ', connection left open'})`)
    t.notOk(backend.counts.has(hidden), `${f.name}: the smuggled request never reached the backend`)
  }
  // a follow-up on a fresh connection still works
  const after = await rawExchange(g.port, head([...START, 'x-request-id: after', 'Connection: close', `Content-Length: ${json('after').length}`]) + json('after'))
  t.same(after.statuses, [200], 'the gateway still serves')
  t.same(backend.twice(), [], 'the backend never received a request twice')
  t.same([...backend.counts.keys()].filter((id) => id.startsWith('smuggled-')), [], 'no smuggled request at all')
  t.equal(await g.stop(10_000), 0, 'clean exit')
  gw = null
})

interface HeaderCase { name: string, headers: Array<[string, string]>, status: number, unknown: boolean }

const headerCases: HeaderCase[] = [
  // controls: the header is read from the trusted peer
  { name: 'no forwarding header: a caller inside the network (internal tier)', headers: [], status: 200, unknown: false },
  { name: 'X-Forwarded-For US', headers: [['x-forwarded-for', US]], status: 200, unknown: false },
  { name: 'X-Forwarded-For CU', headers: [['x-forwarded-for', CU]], status: 451, unknown: false },
  // junk: location unknown, never the proxy's own tier
  { name: 'X-Forwarded-For: ,,,', headers: [['x-forwarded-for', ',,,']], status: 451, unknown: true },
  { name: 'X-Forwarded-For: " , , "', headers: [['x-forwarded-for', ' , , ']], status: 451, unknown: true },
  { name: 'X-Forwarded-For: not-an-ip', headers: [['x-forwarded-for', 'not-an-ip']], status: 451, unknown: true },
  { name: 'X-Forwarded-For: US then junk', headers: [['x-forwarded-for', `${US}, 999.1.1.1`]], status: 451, unknown: true },
  { name: 'X-Forwarded-For: leading-zero address', headers: [['x-forwarded-for', '008.008.008.008']], status: 451, unknown: true },
  { name: 'Forwarded: for= empty', headers: [['forwarded', 'for=']], status: 451, unknown: true },
  { name: 'Forwarded: for=unknown', headers: [['forwarded', 'for=unknown']], status: 451, unknown: true },
  { name: 'X-Forwarded-For and Forwarded disagree', headers: [['x-forwarded-for', US], ['forwarded', `for=${CU}`]], status: 451, unknown: true },
  { name: 'X-Forwarded-For and Forwarded disagree (the other way)', headers: [['x-forwarded-for', CU], ['forwarded', `for=${US}`]], status: 451, unknown: true }
]

t.test('forwarding-header junk from a trusted peer: location unknown, never the proxy\'s own tier', async (t) => {
  const backend = await countingBackend()
  t.teardown(backend.close)
  const { dir, cleanup } = await tempDir('xff')
  t.teardown(cleanup)
  const auditDir = join(dir, 'audit')
  const base = gatewayConfig(backend.url, auditDir)
  let gw: Gateway | null = await startGateway(await writeConfig(dir, gatewayConfig(backend.url, auditDir, {
    server: { ...(base.server as Record<string, unknown>), trustedProxies: ['127.0.0.1/32', '::1/128'] }
  })))
  t.teardown(() => { gw?.kill('SIGKILL') })
  const g = gw

  for (const [i, c] of headerCases.entries()) {
    const id = `xff-${i}`
    const r = await rawRequest(g.port, '/v1/chat/completions', [['authorization', `Bearer ${KEY1}`], ['x-request-id', id], ...c.headers], json(id))
    t.equal(r.status, c.status, `${c.name}: ${c.status} (got ${r.status}${backend.counts.has(id) ? ', forwarded' : ''})`)
    t.equal(backend.counts.has(id), c.status === 200, `${c.name}: backend ${c.status === 200 ? 'reached' : 'not reached'}`)
  }
  t.equal(await g.stop(10_000), 0, 'clean exit')
  gw = null
  const audit = await readAudit(auditDir)
  for (const [i, c] of headerCases.entries()) {
    if (!c.unknown) continue
    const rec = audit.byId.get(`xff-${i}`)?.[0]
    t.same([rec?.country, rec?.locationTier], [null, 'embargoed'], `${c.name}: recorded with country unknown and the unknown tier (got ${String(rec?.country)}, ${String(rec?.locationTier)})`)
  }
})
