/*
 * The log's batch in front of stdout (infra/logger.ts LineBatch): lines leave in batches of at least batchBytes, in
 * order, each batch whole lines; a short batch leaves after flushMs; and nothing queued is lost when the process
 * ends, whether naturally, by process.exit() or from a SIGTERM handler.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { openSync, closeSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pino from 'pino'
import sonicBoom from 'sonic-boom'
import { LineBatch } from '../../src/infra/logger.js'
import { ROOT } from '../helpers/process.js'

const SonicBoom = sonicBoom as unknown as typeof sonicBoom.default

function tmp (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'geogate-line-batch-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

async function until (what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

t.test('lines leave in order, in batches of whole lines of at least batchBytes', async (t) => {
  const file = join(tmp(t), 'out.log')
  const fd = openSync(file, 'w')
  t.teardown(() => { closeSync(fd) })
  const out = new SonicBoom({ fd, sync: false, minLength: 1 })
  const batches: string[] = []
  const write = out.write.bind(out)
  out.write = (s: string) => { batches.push(s); return write(s) }
  const batch = new LineBatch(out, 1024, 60_000)
  const log = pino({ base: null, timestamp: false }, batch)
  for (let i = 0; i < 200; i++) log.info({ i }, 'a line of the access log')
  t.ok(batches.length >= 10 && batches.length <= 40, `200 lines of ~45 bytes went out in ${batches.length} writes`)
  for (const b of batches) {
    t.ok(Buffer.byteLength(b) >= 1024, 'each batch is at least batchBytes')
    t.ok(b.endsWith('\n'), 'each batch ends on a line')
  }
  await new Promise<void>((resolve, reject) => { batch.flush((err) => { if (err !== undefined && err !== null) reject(err); else resolve() }) })
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
  t.same(lines.map((l) => (JSON.parse(l) as { i: number }).i), Array.from({ length: 200 }, (_, i) => i), 'every line, in order')
})

t.test('a batch short of batchBytes leaves after flushMs', async (t) => {
  const file = join(tmp(t), 'out.log')
  const fd = openSync(file, 'w')
  t.teardown(() => { closeSync(fd) })
  const batch = new LineBatch(new SonicBoom({ fd, sync: false, minLength: 1 }), 1 << 20, 30)
  const log = pino({ base: null, timestamp: false }, batch)
  log.info('one line')
  t.equal(readFileSync(file, 'utf8'), '', 'held at first')
  await until('the line in the file', () => readFileSync(file, 'utf8').includes('one line'))
  t.pass('written once flushMs passed')
})

// A child process logging through createLogger, then ending one way or another. Ordered: ending naturally, or (as
// `geogate serve` stops) flushing the log before process.exit(). A bare process.exit() right after logging writes
// what is queued synchronously, possibly ahead of a write still in flight: every line, the order not promised.
const ENDINGS: Record<string, { code: string, ordered: boolean }> = {
  natural: { code: '', ordered: true },
  exit: { code: 'process.exit(0)', ordered: false },
  sigterm: { code: "process.on('SIGTERM', () => { log.info({ i: -1 }, 'stopped'); log.flush(() => { process.exit(0) }) }); setInterval(() => {}, 1000); process.send?.('ready')", ordered: true }
}

for (const [ending, { code, ordered }] of Object.entries(ENDINGS)) {
  t.test(`nothing queued is lost when the process ends (${ending})`, { timeout: 30_000 }, async (t) => {
    const dir = tmp(t)
    const script = join(dir, 'child.mts')
    writeFileSync(script, `import { createLogger } from ${JSON.stringify(join(ROOT, 'src', 'infra', 'logger.ts'))}\nconst log = createLogger('info')\nfor (let i = 0; i < 333; i++) log.info({ i }, 'line')\n${code}\n`)
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
    t.teardown(() => { child.kill('SIGKILL') })
    let out = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
    if (ending === 'sigterm') {
      await new Promise((resolve) => child.once('message', resolve))
      child.kill('SIGTERM')
    }
    const [status] = await new Promise<[number | null]>((resolve) => child.once('close', (c) => { resolve([c]) }))
    t.equal(status, 0)
    const got = out.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { i: number }).i)
    const want = Array.from({ length: 333 }, (_, i) => i)
    if (ending === 'sigterm') want.push(-1)
    if (ordered) t.same(got, want, 'every line, in order')
    else t.same([...got].sort((a, b) => a - b), want, 'every line')
  })
}

t.test('a stdout whose reader is gone (EPIPE) drops lines; the process goes on and ends normally', { timeout: 30_000 }, async (t) => {
  const dir = tmp(t)
  const script = join(dir, 'child.mts')
  // logs for ~300 ms after its reader has closed the pipe, then says so on stderr and ends
  writeFileSync(script, `import { createLogger } from ${JSON.stringify(join(ROOT, 'src', 'infra', 'logger.ts'))}\nconst log = createLogger('info')\nprocess.on('message', () => { const end = Date.now() + 300; const tick = () => { for (let i = 0; i < 200; i++) log.info({ i }, 'line of a log nobody reads'); if (Date.now() < end) setTimeout(tick, 5); else { process.stderr.write('still running\\n'); process.disconnect() } }; tick() })\nprocess.send?.('ready')\n`)
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let err = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d })
  await new Promise((resolve) => child.once('message', resolve))
  child.stdout?.destroy()
  child.send('go')
  const [status] = await new Promise<[number | null]>((resolve) => child.once('close', (c) => { resolve([c]) }))
  t.equal(status, 0, 'no crash on EPIPE')
  t.match(err, /still running/)
})
