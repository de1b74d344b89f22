/**
 * One database file in service: read, verified (off the request path) and opened with mmdb-lib, with the
 * identity that tells when the file at its path has changed.
 */
import { createHash } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { Reader, type Response } from 'maxmind'
import type { LayerAnswer } from './normalise.js'
import { TreeWalker } from './tree.js'
import { verifyMmdb, type MmdbMetadata } from './verify.js'

const TAIL_BYTES = 4096

/** The embedded default: the CC BY 4.0 country database that `npm ci` installs. */
export function embeddedDatabasePath (): string {
  const require = createRequire(import.meta.url)
  return join(dirname(require.resolve('@ip-location-db/geo-whois-asn-country-mmdb/package.json')), 'geo-whois-asn-country.mmdb')
}

/** A database file that cannot be put in service; the message names the file and what is wrong with it. */
export class GeoDatabaseError extends Error {
  override readonly name = 'GeoDatabaseError'
  constructor (readonly path: string, readonly reason: string, options?: { cause?: unknown }) {
    super(`GeoIP database ${path} refused: ${reason}`, options)
  }
}

export interface Layer {
  readonly path: string
  readonly reader: Reader<Response>
  readonly meta: MmdbMetadata
  /** ino:size:mtime of the file that was loaded */
  readonly identity: string
  readonly loadedAt: Date
  readonly walker: TreeWalker
  /** normalised answers by data-section offset of the record: decoded by mmdb-lib once, then served from here */
  readonly answers: Map<number, LayerAnswer>
}

/**
 * What tells one file from the next at a path: inode, size, mtime, and a hash of its tail (the metadata section
 * with build_epoch lives there). File timestamps are coarse and inodes are reused, so two updates in quick
 * succession can share the first three.
 */
export async function identityOf (path: string): Promise<string> {
  const fh = await open(path, 'r')
  try {
    const s = await fh.stat()
    if (!s.isFile()) throw new Error('not a regular file')
    const n = Math.min(s.size, TAIL_BYTES)
    const tail = Buffer.alloc(n)
    await fh.read(tail, 0, n, s.size - n)
    return `${s.ino}:${s.size}:${s.mtimeMs}:${createHash('sha256').update(tail).digest('hex').slice(0, 16)}`
  } finally {
    await fh.close()
  }
}

/** Read, verify and open one database file; throws GeoDatabaseError naming the file. */
export async function loadLayer (path: string, opts: { deep?: boolean } = {}): Promise<Layer> {
  let buf: Buffer
  let identity: string
  try {
    identity = await identityOf(path)
    buf = await readFile(path)
  } catch (err) {
    throw new GeoDatabaseError(path, `cannot read it (${err instanceof Error ? err.message : String(err)})`, { cause: err })
  }
  if (buf[0] === 0x1f && buf[1] === 0x8b) throw new GeoDatabaseError(path, 'it is gzip-compressed; give the decompressed .mmdb file')
  let meta: MmdbMetadata
  let reader: Reader<Response>
  try {
    meta = await verifyMmdb(buf, opts)
    reader = new Reader<Response>(buf)
    // probe: one IPv4 and, for IPv6 databases, one IPv6 lookup through the reader that will serve requests
    reader.get('1.1.1.1')
    if (meta.ipVersion === 6) reader.get('2001:db8::1')
  } catch (err) {
    throw new GeoDatabaseError(path, `not a valid MaxMind DB file: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  return { path, reader, meta, identity, loadedAt: new Date(), walker: new TreeWalker(buf, meta), answers: new Map() }
}
