import type { Test } from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/*
 * Real filesystems that fail: a small tmpfs (ENOSPC, then grown by a remount) and a loop-mounted ext4 shut down
 * with EXT4_IOC_SHUTDOWN (every write EIO, as a dead disk). Mounting needs root: without it the test is a tap
 * skip with the reason, and under CI=true (CI runs as root) a failure.
 */

/**
 * The reason a mounting test is skipped here, or false when it runs. Under CI=true it always runs (CI is root and
 * has the tools), so a missing privilege or tool fails there instead of passing as a skip.
 */
export function mountSkip (tools: string[] = []): string | false {
  if (process.env.CI === 'true') return false
  if (process.getuid?.() !== 0) return 'needs root to mount a filesystem (run as root, as CI does)'
  const missing = tools.filter((tool) => spawnSync('which', [tool]).status !== 0)
  return missing.length > 0 ? `needs ${missing.join(', ')}` : false
}

function sh (cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

export interface Mounted { dir: string, remount: (opts: string) => void }

/** A tmpfs of `size` (e.g. '512k') at a fresh directory, unmounted at teardown. */
export async function tmpfs (t: Test, size: string): Promise<Mounted> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-tmpfs-'))
  sh('mount', '-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir)
  t.teardown(async () => {
    spawnSync('umount', ['-l', dir])
    await rm(dir, { recursive: true, force: true })
  })
  return { dir, remount: (opts) => { sh('mount', '-o', `remount,${opts}`, dir) } }
}

/** Fill a filesystem: one file grown until the disk says ENOSPC. Returns its path (delete it to make room). */
export async function fill (dir: string): Promise<string> {
  const path = join(dir, 'filler')
  const fh = await open(path, 'w')
  const chunk = Buffer.alloc(4096, 0x61)
  try {
    for (;;) await fh.write(chunk)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  } finally {
    await fh.close()
  }
  return path
}

export interface Ext4 {
  dir: string
  /** EXT4_IOC_SHUTDOWN: from now on every write and fsync on it fails with EIO */
  shutdown: () => void
  /** unmount and mount again (the way an operator brings a dead disk back) */
  remount: () => void
  /** fsfreeze: every write blocks (a mount that stopped answering) until thaw() (idempotent) */
  freeze: () => void
  thaw: () => void
}

/** A loop-mounted ext4 image of `mb` MiB; needs losetup, mkfs.ext4 and python3 (for the shutdown ioctl). */
export const EXT4_TOOLS = ['losetup', 'mkfs.ext4', 'python3']
export async function ext4 (t: Test, mb: number): Promise<Ext4> {
  const base = await mkdtemp(join(tmpdir(), 'geogate-ext4-'))
  const img = join(base, 'disk.img')
  const dir = join(base, 'mnt')
  sh('truncate', '-s', `${mb}M`, img)
  sh('mkdir', dir)
  const dev = sh('losetup', '-f', '--show', img).trim()
  sh('mkfs.ext4', '-q', dev)
  sh('mount', dev, dir)
  t.teardown(async () => {
    spawnSync('fsfreeze', ['-u', dir])
    spawnSync('umount', ['-l', dir])
    spawnSync('losetup', ['-d', dev])
    await rm(base, { recursive: true, force: true })
  })
  return {
    dir,
    shutdown: () => {
      // EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32); flag 2 = EXT4_GOING_FLAGS_NOLOGFLUSH (as a pulled disk)
      sh('python3', '-c', `import os,fcntl,struct; d=os.open(${JSON.stringify(dir)}, os.O_RDONLY); fcntl.ioctl(d, 0x8004587D, struct.pack('I', 2))`)
    },
    remount: () => {
      sh('umount', dir)
      sh('mount', dev, dir)
    },
    freeze: () => { sh('fsfreeze', '-f', dir) },
    thaw: () => { spawnSync('fsfreeze', ['-u', dir]) } // idempotent: also run before teardown closes a gateway on it
  }
}
