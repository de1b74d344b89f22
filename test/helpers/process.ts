import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

/** Repository root; whole-process tests run the built CLI (`npm test` builds before tap runs). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CLI = join(ROOT, 'dist', 'cli', 'index.js')

export interface Spawned {
  child: ChildProcessWithoutNullStreams
  /** every pino JSON line seen on stdout so far */
  lines: Array<Record<string, unknown>>
  stderr: string[]
  /** the first JSON log line matching, waiting for it if needed */
  waitForLine (pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>
  /** resolves with the exit code */
  exited: Promise<number | null>
  kill (signal?: NodeJS.Signals): void
}

/** Spawn `node dist/cli/index.js …args` and follow its JSON log lines. */
export function spawnCli (args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: 'pipe' })
  const lines: Spawned['lines'] = []
  const stderr: string[] = []
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean, resolve: (l: Record<string, unknown>) => void }> = []
  createInterface({ input: child.stdout }).on('line', (text) => {
    let l: Record<string, unknown>
    try { l = JSON.parse(text) as Record<string, unknown> } catch { return }
    lines.push(l)
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]
      if (w !== undefined && w.pred(l)) { waiters.splice(i, 1); w.resolve(l) }
    }
  })
  createInterface({ input: child.stderr }).on('line', (text) => { stderr.push(text) })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  return {
    child,
    lines,
    stderr,
    async waitForLine (pred) {
      const found = lines.find(pred)
      if (found !== undefined) return found
      return await Promise.race([
        new Promise<Record<string, unknown>>((resolve) => { waiters.push({ pred, resolve }) }),
        exited.then((code) => { throw new Error(`process exited (${String(code)}) before the expected log line; stderr:\n${stderr.join('\n')}`) })
      ])
    },
    exited,
    kill (signal = 'SIGTERM') { if (child.exitCode === null && child.signalCode === null) child.kill(signal) }
  }
}

/** `geogate mock-backend --port 0 …`: its URL once it listens. */
export async function spawnMock (args: string[] = []): Promise<{ proc: Spawned, url: string }> {
  const proc = spawnCli(['mock-backend', '--port', '0', ...args])
  const l = await proc.waitForLine((x) => x.msg === 'mock backend listening')
  return { proc, url: String(l.url) }
}

/**
 * `geogate serve --config FILE`: data-plane and admin URLs once it listens. One worker unless `args` say otherwise,
 * so a test's process count does not depend on the machine's cores (server.workers defaults to auto).
 */
export async function spawnGateway (configFile: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ proc: Spawned, url: string, adminUrl: string }> {
  const proc = spawnCli(['serve', '--config', configFile, ...(args.includes('--workers') ? [] : ['--workers', '1']), ...args], env)
  const l = await proc.waitForLine((x) => x.msg === 'geogate listening')
  return { proc, url: String(l.url), adminUrl: String(l.adminUrl) }
}

export interface CliResult { code: number | null, stdout: string, stderr: string }

/** Run the built CLI to completion (asynchronously, so a gateway in this process can answer it). */
export async function runCli (args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}
