import t from 'tap'
import { availableParallelism } from 'node:os'
import { parseConfig } from '../../src/config/load.js'
import { workerCount } from '../../src/cli/workers.js'
import { baseConfig } from '../helpers/gateway.js'

const withRedis = parseConfig(baseConfig('http://127.0.0.1:9', { redis: { url: 'redis://127.0.0.1:6379' }, audit: { dir: 'var/audit' } }))
const noRedis = parseConfig(baseConfig('http://127.0.0.1:9', { audit: { dir: 'var/audit' } }))

t.test('auto is the usable cores with Redis, one process without', async (t) => {
  t.equal(withRedis.server.workers, 'auto', 'the default')
  t.equal(workerCount(undefined, withRedis), availableParallelism())
  t.equal(workerCount(undefined, noRedis), 1)
  t.equal(workerCount('auto', noRedis), 1)
})

t.test('the flag wins over the file; a count is checked', async (t) => {
  const fileSays3 = parseConfig({ ...baseConfig('http://127.0.0.1:9', { redis: { url: 'redis://127.0.0.1:6379' }, audit: { dir: 'var/audit' } }), server: { trustedProxies: [], workers: 3 } })
  t.equal(workerCount(undefined, fileSays3), 3)
  t.equal(workerCount('1', fileSays3), 1)
  t.throws(() => workerCount('0', withRedis), /positive integer or auto/)
  t.throws(() => workerCount('two', withRedis), /positive integer or auto/)
  t.throws(() => workerCount('2', noRedis), /2 workers need redis/, 'more than one worker without Redis is refused')
})
