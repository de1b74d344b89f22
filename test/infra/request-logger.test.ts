/*
 * A request's logger is made on its first line; the access line goes through the gateway's logger with the reqId
 * first. Both must write what a pino child with the request's bindings writes, byte for byte (time aside).
 */
import t from 'tap'
import pino, { type Logger } from 'pino'
import { Writable } from 'node:stream'
import { RequestLogger } from '../../src/infra/logger.js'

function capture (level = 'info'): { log: Logger, lines: string[] } {
  const lines: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== '')); cb() } })
  return { log: pino({ level, base: { pid: 7, hostname: 'h', worker: 1 }, timestamp: () => ',"time":0' }, sink), lines }
}

t.test('lines through a RequestLogger are the lines of a pino child with the same bindings', async (t) => {
  const a = capture()
  const b = capture()
  const lazy = new RequestLogger(a.log, { reqId: 'r-1' }, {})
  const child = b.log.child({ reqId: 'r-1' })
  for (const l of [lazy, child]) {
    l.info({ status: 200, path: '/v1/x' }, 'request')
    l.warn('plain message %s', 'arg')
    l.error({ err: new Error('boom') }, 'failed')
    l.debug({ quiet: true }, 'below the level')
    l.child({ part: 'sub' }).info('from a grandchild')
  }
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(a.lines.length, 4, 'the debug line is not written at level info')
  t.same(a.lines.map((l) => l.replace(/"stack":"[^"]*"/, '')), b.lines.map((l) => l.replace(/"stack":"[^"]*"/, '')))
  t.match(JSON.parse(a.lines[3] ?? '{}'), { reqId: 'r-1', part: 'sub' })
})

t.test('the access line written through the parent with the reqId first equals the child\'s', async (t) => {
  const a = capture()
  const b = capture()
  a.log.info({ reqId: 'r-2', method: 'POST', path: '/v1/chat/completions', status: 200, rule: 'allow', ms: 1.5 }, 'request')
  b.log.child({ reqId: 'r-2' }).info({ method: 'POST', path: '/v1/chat/completions', status: 200, rule: 'allow', ms: 1.5 }, 'request')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(a.lines[0], b.lines[0])
  t.equal(a.lines[0], '{"level":30,"time":0,"pid":7,"hostname":"h","worker":1,"reqId":"r-2","method":"POST","path":"/v1/chat/completions","status":200,"rule":"allow","ms":1.5,"msg":"request"}')
})

t.test('level: the parent\'s until the child exists; a level set on it applies to this request alone', async (t) => {
  const a = capture()
  const lazy = new RequestLogger(a.log, { reqId: 'r-3' }, {})
  const other = new RequestLogger(a.log, { reqId: 'r-4' }, {})
  t.equal(lazy.level, 'info')
  a.log.level = 'warn'
  t.equal(lazy.level, 'warn', 'follows a reload of the parent while no line was written')
  lazy.level = 'debug'
  lazy.debug('now written')
  other.debug('not written')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(lazy.level, 'debug')
  t.equal(a.log.level, 'warn', 'the parent keeps its level')
  t.same(a.lines.map((l) => (JSON.parse(l) as { reqId: string }).reqId), ['r-3'])
  t.equal(new RequestLogger(a.log, { reqId: 'r-5' }, { level: 'error' }).level, 'error', 'a route level given to the child')
})

t.test('the rest of a pino logger: isLevelEnabled, bindings, setBindings, flush, levels', async (t) => {
  const a = capture('warn')
  const lazy = new RequestLogger(a.log, { reqId: 'r-6' }, {})
  t.equal(lazy.isLevelEnabled('info'), false)
  t.equal(lazy.isLevelEnabled('error'), true)
  t.same(lazy.bindings(), capture('warn').log.child({ reqId: 'r-6' }).bindings(), 'what a pino child reports')
  t.match(lazy.bindings(), { reqId: 'r-6' })
  lazy.setBindings({ part: 'x' })
  lazy.warn('after setBindings')
  await new Promise<void>((resolve, reject) => { lazy.flush((err) => { if (err !== undefined && err !== null) reject(err); else resolve() }) })
  t.match(JSON.parse(a.lines[0] ?? '{}'), { reqId: 'r-6', part: 'x', msg: 'after setBindings' })
  t.equal(lazy.levels.values.warn, 40)
  t.equal(new RequestLogger(a.log, { reqId: 'r-7' }, { level: 'debug' }).isLevelEnabled('debug'), true, 'a level given to the child counts')
})
