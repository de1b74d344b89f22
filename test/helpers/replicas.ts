import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'

const CLI = resolve(import.meta.dirname, '../../dist/cli/index.js')

export interface Replicas { urls: string[], adminUrls: string[], files: string[], procs: ChildProcess[], stop (): Promise<void> }

/**
 * `n` real gateway processes (the built CLI: `node dist/cli/index.js serve --config FILE`) on one
 * configuration (or one per replica: a function of its index), each on a port of its own (port 0), resolved from
 * what `serve` prints when it listens.
 */
export async function startReplicas (n: number, configOf: Record<string, unknown> | ((i: number) => Record<string, unknown>)): Promise<Replicas> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-replicas-'))
  const procs: ChildProcess[] = []
  const urls: string[] = []
  const adminUrls: string[] = []
  const files: string[] = []
  try {
    for (let i = 0; i < n; i++) {
      const config = typeof configOf === 'function' ? configOf(i) : configOf
      const file = join(dir, `replica-${i}.yaml`)
      const cfg = {
        ...config,
        server: { host: '127.0.0.1', port: 0, adminPort: 0, ...(config.server as object | undefined) },
        audit: { dir: join(dir, `audit-${i}`), ...(config.audit as object | undefined) }
      }
      await writeFile(file, JSON.stringify(cfg, null, 2)) // JSON is YAML
      const proc = spawn(process.execPath, [CLI, 'serve', '--config', file, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } })
      procs.push(proc)
      files.push(file)
      const at = await listeningUrl(proc)
      urls.push(at.url)
      adminUrls.push(at.adminUrl)
    }
  } catch (err) {
    await stopAll(procs)
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  return {
    urls,
    adminUrls,
    files,
    procs,
    async stop () {
      await stopAll(procs)
      await rm(dir, { recursive: true, force: true })
    }
  }
}

async function stopAll (procs: ChildProcess[]): Promise<void> {
  await Promise.all(procs.map(async (p) => {
    if (p.exitCode !== null || p.signalCode !== null) return
    const gone = new Promise((resolve) => p.once('exit', resolve))
    p.kill('SIGTERM')
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000)
    await gone
    clearTimeout(timer)
  }))
}

/** The data-plane URL a serving process announces (its JSON log line, or a plain "listening on" line). */
async function listeningUrl (proc: ChildProcess): Promise<{ url: string, adminUrl: string }> {
  return await new Promise((resolve, reject) => {
    let stderr = ''
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const lines = createInterface({ input: proc.stdout ?? process.stdin })
    const timer = setTimeout(() => { reject(new Error(`gateway did not announce its URL in 15 s; stderr: ${stderr}`)) }, 15_000)
    const onExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`gateway exited (${String(code)}): ${stderr}`)) }
    proc.once('exit', onExit)
    lines.on('line', (line) => {
      let url: string | undefined
      let adminUrl = ''
      try {
        const j = JSON.parse(line) as { url?: unknown, adminUrl?: unknown }
        if (typeof j.url === 'string') url = j.url
        if (typeof j.adminUrl === 'string') adminUrl = j.adminUrl.replace(/\/$/, '')
      } catch {
        if (!/admin/i.test(line)) url = /(https?:\/\/[^\s"']+)/.exec(line)?.[1]
      }
      if (url === undefined) return
      clearTimeout(timer)
      proc.off('exit', onExit)
      lines.removeAllListeners('line')
      // keep draining stdout so a chatty replica never blocks on a full pipe
      proc.stdout?.resume()
      resolve({ url: url.replace(/\/$/, ''), adminUrl })
    })
  })
}
