import { randomBytes } from 'node:crypto'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import type { AddressInfo } from 'node:net'
import type { AdminRecord } from '../../src/audit/types.js'
import type { Runtime } from '../../src/runtime.js'
import { readRecords } from '../../src/audit/read.js'

/** A unique key prefix per test run, so tests sharing the machine's Redis never see each other's keys. */
export function uniquePrefix (tag: string): string {
  return `test:${tag}:${randomBytes(6).toString('hex')}:`
}

async function pingable (url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 500, retryStrategy: () => null, enableOfflineQueue: false })
  r.on('error', () => {})
  try {
    await r.connect()
    return (await r.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    r.disconnect()
  }
}

async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as AddressInfo
  await new Promise<void>((resolve) => srv.close(() => { resolve() }))
  return port
}

/**
 * The Redis the tests use: REDIS_URL, else redis://127.0.0.1:6379, else a redis-server started on a free port
 * (stopped by the returned stop()).
 */
export async function testRedis (): Promise<{ url: string, stop: () => Promise<void> }> {
  const candidates = [process.env.REDIS_URL, 'redis://127.0.0.1:6379'].filter((u): u is string => u !== undefined && u !== '')
  for (const url of candidates) if (await pingable(url)) return { url, stop: async () => {} }
  const port = await freePort()
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const url = `redis://127.0.0.1:${port}`
  for (let i = 0; i < 100 && !(await pingable(url)); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  return { url, stop: async () => { child.kill('SIGTERM') } }
}

/** Delete every key under a prefix (test clean-up). */
export async function deletePrefix (url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 })
  try {
    let cursor = '0'
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) await r.del(...keys)
    } while (cursor !== '0')
  } finally {
    r.disconnect()
  }
}

/** The admin-change records the gateway's (real) audit log holds, once what is queued is on disk. */
export async function adminChanges (rt: Runtime): Promise<AdminRecord[]> {
  await rt.audit.flush()
  const out: AdminRecord[] = []
  for await (const { record } of readRecords(rt.audit.dir, { kind: 'admin' })) if (record.kind === 'admin') out.push(record)
  return out
}

/** Resolve when check() is true, polling every few ms; reject after timeoutMs. Returns the time it took. */
export async function waitFor (check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now()
  for (;;) {
    if (await check()) return Date.now() - start
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
