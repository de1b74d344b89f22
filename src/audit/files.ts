/**
 * File helpers the writer's parts share: a write that loops until every byte is down, fsync of a directory (so a
 * created or renamed file survives a crash), and the SHA-256 of a whole file.
 */
import { createHash, type Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'

/** Write every byte of `buf`: at the file's end (no `position`, or a file opened O_APPEND), or from `position` on. */
export async function writeAll (fh: FileHandle, buf: Buffer, position?: number): Promise<void> {
  let off = 0
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position === undefined ? null : position + off)
    off += bytesWritten
  }
}

export async function fsyncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try { await fh.sync() } catch { /* some filesystems refuse fsync on directories */ } finally { await fh.close() }
}

export async function hashFile (path: string): Promise<Hash> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer)
  return h
}

/** errno code of a failed write (ENOSPC, EIO, EROFS, …), or the message when there is none. */
export function errorCode (err: unknown): string {
  const e = err as { code?: unknown, message?: unknown } | null
  if (typeof e?.code === 'string') return e.code
  return typeof e?.message === 'string' ? e.message : String(err)
}
