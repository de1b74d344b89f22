import t from 'tap'
import { WriteHealth } from '../../src/audit/health.js'

const enospc = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })

t.test('the failure ends only once every loop that failed has written again', async (t) => {
  const h = new WriteHealth('/var/audit', 1000)
  t.equal(h.succeeded('journal', true), null, 'no failure: nothing ended')
  t.equal(h.failed(enospc, 'records'), true, 'a new failure')
  t.equal(h.failed(enospc, 'journal'), false, 'the same failure, another loop')
  t.ok(h.failing())
  const backoff = h.retryAt
  t.equal(h.succeeded('journal', true), false, 'the journal wrote, the records loop has not: still failing')
  t.ok(h.failing())
  t.equal(h.retryAt, backoff, 'the backoff holds')
  t.equal(h.failure?.errors, 2)
  t.equal(h.failed(enospc, 'records'), false, 'the records loop fails again: the same failure goes on')
  const ended = h.succeeded('records', true)
  t.ok(ended !== false && ended !== null, 'the last failing loop wrote: the failure ends')
  t.equal(ended !== false ? ended?.code : null, 'ENOSPC')
  t.equal(ended !== false ? ended?.errors : null, 3, 'every failed write counted')
  t.notOk(h.failing())
  t.equal(h.retryAt, 0)
  t.equal(h.writeErrors, 3)
})

t.test('a loop with nothing left to write is no longer failing, but only a write ends the failure', async (t) => {
  const h = new WriteHealth('/var/audit', 1000)
  h.failed(enospc, 'journal')
  t.equal(h.succeeded('records', false), false, 'the records loop, idle, has not written: proves nothing')
  t.equal(h.succeeded('journal', false), false, 'the journal\'s failed lines were withdrawn: it is idle, no write yet')
  t.ok(h.failing())
  const ended = h.succeeded('records', true)
  t.ok(ended !== false && ended !== null, 'a write (the refusals\' records) ends it')
  t.notOk(h.failing())
  h.failed(enospc, 'journal')
  t.equal(h.succeeded('records', true), false, 'a write while the journal still has lines that failed: goes on')
  t.equal(h.succeeded('journal', false) !== false, true, 'then the journal, its lines withdrawn: ended (a write came after the failure began)')
})

t.test('a write that has not returned for longer than the stall limit is failing; either loop\'s', async (t) => {
  const h = new WriteHealth('/var/audit', 100)
  // the stall check's clock is monotonic (performance.now())
  const t0 = performance.now()
  h.startCommit('journal')
  h.startCommit('records')
  t.notOk(h.failing(t0 + 50))
  h.endCommit('journal')
  t.ok(h.failing(t0 + 200), 'the records write is still out')
  t.match(h.reason(3, t0 + 200) ?? '', /has not returned for 0\.2 s \(3 record/)
  h.endCommit('records')
  t.notOk(h.failing(t0 + 200))
})
