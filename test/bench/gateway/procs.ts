/**
 * Processes of the gateway benchmark: spawned pinned to one core (or a list of cores) with `taskset`, output to a
 * log file, and read back from /proc (CPU ticks, resident memory) while they run — the process and all its
 * descendants (`geogate serve --workers N` forks its workers).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { appendFileSync, openSync, closeSync, readFileSync, readdirSync, truncateSync } from 'node:fs'
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

/**
 * `taskset -c CORES cmd …args` (CORES: one core or a list, "0,1") with stdout and stderr appended to `log`; taskset
 * execs, so the pid is the command's, and what it forks inherits the affinity.
 */
export function spawnPinned (name: string, core: number | string, cmd: string, args: string[], log: string, opts: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Pinned {
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

/** pino's warn, error and fatal lines */
const WARNING = /^\{"level":(?:4|5|6)0,/

/** Where a process's warnings and errors are kept, phase after phase, when its log is emptied. */
export function warningsLog (p: Pinned): string {
  return p.log.replace(/(\.log)?$/, '.warnings.log')
}

/**
 * Empty a log file between phases (the writers append, so they carry on at the new end). Its warnings and errors
 * (JSON lines at pino's warn level or above) are kept first in warningsLog(p): an access log at info fills the disk
 * over a run, but a failure's reason must outlive it.
 */
export function truncateLog (p: Pinned): void {
  let text: string
  try { text = readFileSync(p.log, 'utf8') } catch { return } // not created yet
  const kept = text.split('\n').filter((l) => WARNING.test(l))
  if (kept.length > 0) appendFileSync(warningsLog(p), kept.join('\n') + '\n')
  truncateSync(p.log, 0)
}

/**
 * The most frequent reasons among the warnings and errors kept for `p` (the error's message, else the line's),
 * `top` of them with their counts, for a note on what failed.
 */
export function warningReasons (p: Pinned, top = 3): Array<{ reason: string, count: number }> {
  let text: string
  try { text = readFileSync(warningsLog(p), 'utf8') } catch { return [] }
  const counts = new Map<string, number>()
  for (const l of text.split('\n')) {
    if (l === '') continue
    let reason: string
    try {
      const o = JSON.parse(l) as { msg?: unknown, err?: { message?: unknown } }
      reason = typeof o.err?.message === 'string' ? `${String(o.msg)}: ${o.err.message}` : String(o.msg)
    } catch { continue }
    counts.set(reason, (counts.get(reason) ?? 0) + 1)
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, top).map(([reason, count]) => ({ reason, count }))
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** `pid` and every live descendant (from /proc/PID/task/TID/children); a process gone meanwhile is left out. */
export function processTree (pid: number): number[] {
  const out: number[] = []
  const todo = [pid]
  while (todo.length > 0) {
    const p = todo.pop() as number
    out.push(p)
    let tasks: string[]
    try { tasks = readdirSync(`/proc/${p}/task`) } catch { continue }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').split(' ')) if (c.trim() !== '') todo.push(Number(c))
      } catch { /* the thread ended */ }
    }
  }
  return out
}

/**
 * CPU time of the process and its descendants, in µs: for each, utime + stime (all threads) + cutime + cstime
 * (children it has reaped), so a worker that exits between two readings still counts once, in its parent.
 */
export function cpuMicros (pid: number): number {
  let ticks = 0
  for (const p of processTree(pid)) {
    let stat: string
    try { stat = readFileSync(`/proc/${p}/stat`, 'utf8') } catch { continue }
    // the command name is parenthesised and may hold spaces: fields count from after the last ')'
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
  }
  return (ticks * 1e6) / CLK_TCK
}

/** VmRSS and VmHWM (peak) in MB, summed over the process and its descendants (shared pages count in each). */
export function memory (pid: number): { rss: number, hwm: number } {
  let rss = 0
  let hwm = 0
  for (const p of processTree(pid)) {
    let status: string
    try { status = readFileSync(`/proc/${p}/status`, 'utf8') } catch { continue }
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN)
    rss += kb('VmRSS') / 1024
    hwm += kb('VmHWM') / 1024
  }
  return { rss, hwm }
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
