/**
 * Processes of the gateway benchmark: spawned pinned to one core with `taskset`, output to a log file, and read
 * back from /proc (CPU ticks, resident memory) while they run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { openSync, closeSync, readFileSync, truncateSync } from 'node:fs'
import { request } from 'undici'

export interface Pinned {
  name: string
  pid: number
  child: ChildProcess
  log: string
  exited: Promise<void>
  /** the last lines it wrote, for error messages */
  tail (): string
  stop (): Promise<void>
}

/** `taskset -c CORE cmd …args` with stdout and stderr appended to `log`; taskset execs, so the pid is the command's. */
export function spawnPinned (name: string, core: number, cmd: string, args: string[], log: string, opts: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Pinned {
  const fd = openSync(log, 'a')
  const child = spawn('taskset', ['-c', String(core), cmd, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  const exited = once(child, 'exit').then(() => undefined)
  return {
    name,
    pid: child.pid ?? -1,
    child,
    log,
    exited,
    tail () {
      try { return readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') } catch { return '' }
    },
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const t = setTimeout(() => { child.kill('SIGKILL') }, 5000)
      await exited
      clearTimeout(t)
    }
  }
}

/** Empty a log file between phases (the writers append, so they carry on at the new end). */
export function truncateLog (p: Pinned): void {
  try { truncateSync(p.log, 0) } catch { /* not created yet */ }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** utime + stime of the whole process (all threads), in µs. */
export function cpuMicros (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the command name is parenthesised and may hold spaces: fields count from after the last ')'
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK
}

/** VmRSS and VmHWM (peak) in MB. */
export function memory (pid: number): { rss: number, hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 }
}

/** Pin this process (every thread) to `core`, so what it spawns starts there too. */
export function pinSelf (core: number): void {
  spawnSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' })
}

export function have (cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/** POST until a 200 comes back (or the process dies, or `ms` pass). */
export async function waitReady (p: Pinned | null, url: string, headers: Record<string, string>, body: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  let last = ''
  while (Date.now() < end) {
    if (p !== null && (p.child.exitCode !== null || p.child.signalCode !== null)) throw new Error(`${p.name} exited (${String(p.child.exitCode ?? p.child.signalCode)}):\n${p.tail()}`)
    try {
      const res = await request(url, { method: 'POST', headers, body, headersTimeout: 5000, bodyTimeout: 5000 })
      const text = await res.body.text()
      if (res.statusCode === 200) return
      last = `${res.statusCode} ${text.slice(0, 300)}`
    } catch (err) {
      last = String(err)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`${p?.name ?? url} not ready after ${ms} ms (last answer: ${last})${p === null ? '' : `\n${p.tail()}`}`)
}
