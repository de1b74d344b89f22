import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { stringify } from 'yaml'
import { baseConfig, startUpstream, sha } from '../helpers/gateway.js'

interface LogLine { msg?: string, level?: number, url?: string, adminUrl?: string, issues?: Array<{ path: string, message: string }>, sections?: string[], changed?: string[] }

t.test('SIGHUP: a broken file is refused and the old policy keeps serving; a good file applies', async (t) => {
  const up = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [] }))
  })
  const dir = await mkdtemp(join(tmpdir(), 'geogate-reload-'))
  const file = join(dir, 'geogate.yaml')
  const good = baseConfig(up.url, { server: { host: '127.0.0.1', port: 0, adminPort: 0 }, audit: { dir: join(dir, 'audit') }, log: { level: 'info' } })
  await writeFile(file, stringify(good))
  const child = spawn(process.execPath, ['dist/cli/index.js', 'serve', '--config', file, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    await up.close()
    await rm(dir, { recursive: true, force: true })
  })
  const lines: LogLine[] = []
  const waiters: Array<{ test: (l: LogLine) => boolean, resolve: (l: LogLine) => void }> = []
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  createInterface({ input: child.stdout }).on('line', (text) => {
    let l: LogLine
    try { l = JSON.parse(text) as LogLine } catch { return }
    lines.push(l)
    for (const w of [...waiters]) if (w.test(l)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(l) }
  })
  /** The next log line (from now on) that matches; fails the test if the process exits first. */
  const next = async (test: (l: LogLine) => boolean, what: string): Promise<LogLine> => await new Promise((resolve, reject) => {
    const onExit = (): void => { reject(new Error(`gateway exited while waiting for ${what}: ${stderr}`)) }
    child.once('exit', onExit)
    waiters.push({ test, resolve: (l) => { child.off('exit', onExit); resolve(l) } })
  })

  const listening = await next((l) => l.msg === 'geogate listening', 'the gateway to listen')
  const url = listening.url ?? ''
  const adminUrl = listening.adminUrl ?? ''
  const chat = async (key: string): Promise<number> => (await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama-3.1-8b', messages: [] })
  })).status
  const tier = async (name: string): Promise<unknown> => await (await fetch(`${adminUrl}/admin/tiers/${name}`, { headers: { authorization: 'Bearer test-admin' } })).json()

  t.equal(await chat('test-key-tier1'), 200, 'serving on the file as started')
  const tier2Before = await tier('tier2')

  // Broken in several ways at once: every error must be reported.
  const broken = structuredClone(good) as { tiers: Record<string, Record<string, unknown>>, keys: Array<Record<string, unknown>> }
  broken.tiers.tier2 = { ...broken.tiers.tier2, failMode: 'sideways', maxOutputTokens: -1 }
  broken.keys = []
  ;(broken as Record<string, unknown>).surprise = true
  await writeFile(file, stringify(broken))
  let refused = next((l) => /reload refused/.test(l.msg ?? ''), 'the refusal')
  child.kill('SIGHUP')
  let r = await refused
  const paths = (r.issues ?? []).map((i) => i.path)
  t.ok(paths.includes('/tiers/tier2/failMode'), 'bad fail mode logged')
  t.ok(paths.includes('/tiers/tier2/maxOutputTokens'), 'bad limit logged')
  t.ok(paths.includes('/surprise'), 'unknown top-level property logged, at its own path')
  t.ok((r.issues ?? []).some((i) => i.path === '/tiers/tier2/failMode' && i.message === '"sideways" is not allowed; allowed: open, closed'), 'the enum error names the value and the allowed ones, as check-config does')
  t.equal(await chat('test-key-tier1'), 200, 'the old policy keeps serving: a key the broken file drops still works')
  t.same(await tier('tier2'), tier2Before, 'tier unchanged')

  await writeFile(file, 'tiers: [unclosed\n  - {')
  refused = next((l) => /reload refused/.test(l.msg ?? ''), 'the refusal of bad YAML')
  child.kill('SIGHUP')
  r = await refused
  t.ok((r.issues ?? []).length > 0, 'YAML error logged')
  t.equal(await chat('test-key-tier1'), 200, 'still serving')

  // A good file: k1 goes, k3 arrives, tier2 changes, and a restart-only setting changes too.
  const next3 = structuredClone(good) as typeof broken & { server: Record<string, unknown> }
  next3.keys = [next3.keys[1] ?? {}, { id: 'k3', sha256: sha('test-key-three'), org: 'Three', tier: 'tier1' }]
  next3.tiers.tier2 = { ...next3.tiers.tier2, maxOutputTokens: 64 }
  next3.server = { ...next3.server, bodyLimit: 2048 }
  await writeFile(file, stringify(next3))
  const restart = next((l) => /need a restart/.test(l.msg ?? ''), 'the restart warning')
  const applied = next((l) => l.msg === 'configuration reloaded', 'the reload')
  child.kill('SIGHUP')
  const done = await applied
  t.same((await restart).sections, ['server'], 'server settings need a restart and say so')
  t.ok(done.changed?.includes('keys') && done.changed.includes('tiers'), 'what changed is logged')
  t.equal(await chat('test-key-tier1'), 401, 'a key removed from the file stops working')
  t.equal(await chat('test-key-three'), 200, 'a key added to the file works')
  t.match(await tier('tier2'), { maxOutputTokens: 64 })
  const big = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: 'Bearer test-key-three', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama-3.1-8b', pad: 'x'.repeat(4096) })
  })
  t.equal(big.status, 200, 'the running body limit is kept until a restart')
  t.equal(child.exitCode, null, 'still running')
})
