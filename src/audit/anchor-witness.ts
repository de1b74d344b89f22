import type { Pool } from 'pg'
import type { S3Client, PutObjectCommandInput } from '@aws-sdk/client-s3'
import { loadOptional } from '../core/optional.js'

/**
 * Witnesses: places the gateway can add a signed digest to but not change or delete, so a tail cut off together
 * with its digests still shows (the witness holds digests the directory lacks).
 *
 *  - PostgreSQL: a table on which the gateway's role has INSERT only (no UPDATE, DELETE, TRUNCATE; see README).
 *    One row per digest; a repeated insert of the same digest is a no-op (ON CONFLICT DO NOTHING needs no more
 *    than INSERT).
 *  - S3 Object Lock, compliance mode: one object per digest, written with a retain-until date no one (root
 *    included) can shorten, and If-None-Match: * so an existing object is never replaced.
 *
 * pg and the AWS SDK (~17 and ~24 MB of RSS) are imported at a witness's first use, so a gateway without
 * audit.witness never loads them; a missing package then fails that append (logged and retried by the Anchorer).
 */

async function pgModule (): Promise<typeof import('pg')> {
  return await loadOptional('pg', 'the PostgreSQL audit witness', async () => await import('pg'))
}

async function s3Module (): Promise<typeof import('@aws-sdk/client-s3')> {
  return await loadOptional('@aws-sdk/client-s3', 'the S3 audit witness', async () => await import('@aws-sdk/client-s3'))
}

export interface WitnessEntry {
  writer: string
  digestSeq: number
  /** digests/<file> */
  file: string
  /** SHA-256 of the digest file's text */
  sha256: string
  /** the digest file's text */
  digest: string
}

export interface WitnessSink {
  readonly name: string
  append: (e: WitnessEntry) => Promise<void>
  close: () => Promise<void>
}

export interface WitnessReader {
  readonly name: string
  list: () => Promise<WitnessEntry[]>
  close: () => Promise<void>
}

const TABLE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/

function table (name: string): string {
  if (!TABLE.test(name)) throw new Error(`witness table: an identifier (schema.table), got "${name}"`)
  return name.split('.').map((p) => `"${p}"`).join('.')
}

/** The table an auditor's DBA creates (the gateway never creates or alters it). */
export function postgresWitnessDdl (name = 'geogate_audit_witness'): string {
  return `CREATE TABLE ${table(name)} (
  writer      text        NOT NULL,
  digest_seq  bigint      NOT NULL,
  file        text        NOT NULL,
  sha256      text        NOT NULL,
  digest      text        NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (writer, digest_seq)
)`
}

export interface PostgresWitnessOptions { url: string, table: string, timeoutMs: number }

export function postgresWitness (o: PostgresWitnessOptions): WitnessSink & WitnessReader {
  const t = table(o.table)
  let pool: Promise<Pool> | null = null
  const connect = async (): Promise<Pool> => {
    const { default: pg } = await pgModule()
    const p = new pg.Pool({ connectionString: o.url, max: 1, connectionTimeoutMillis: o.timeoutMs, query_timeout: o.timeoutMs, idleTimeoutMillis: 10_000 })
    // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
    p.on('error', () => {})
    return p
  }
  // a failed import is not kept: the next append tries again
  const getPool = async (): Promise<Pool> => await (pool ??= connect().catch((err: unknown) => { pool = null; throw err }))
  return {
    name: `postgres ${o.table}`,
    append: async (e) => {
      await (await getPool()).query(`INSERT INTO ${t} (writer, digest_seq, file, sha256, digest) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, [e.writer, e.digestSeq, e.file, e.sha256, e.digest])
    },
    list: async () => {
      const r = await (await getPool()).query<{ writer: string, digest_seq: string, file: string, sha256: string, digest: string }>(`SELECT writer, digest_seq, file, sha256, digest FROM ${t} ORDER BY writer, digest_seq`)
      return r.rows.map((x) => ({ writer: x.writer, digestSeq: Number(x.digest_seq), file: x.file, sha256: x.sha256, digest: x.digest }))
    },
    close: async () => { await (await pool?.catch(() => null))?.end() }
  }
}

export interface S3WitnessOptions {
  bucket: string
  prefix: string
  region: string
  endpoint?: string | undefined
  /** compliance-mode retention of each object, days */
  retainDays: number
  client?: S3Client
}

/** The PutObject request for one digest (exported so its exact headers are tested without an S3 endpoint). */
export function s3PutInput (o: Pick<S3WitnessOptions, 'bucket' | 'prefix' | 'retainDays'>, e: WitnessEntry, now = Date.now()): PutObjectCommandInput {
  return {
    Bucket: o.bucket,
    Key: `${o.prefix}${e.writer}/${e.file}`,
    Body: e.digest,
    ContentType: 'application/json',
    // Object Lock in compliance mode: nobody can delete this version or shorten its retention before the date.
    ObjectLockMode: 'COMPLIANCE',
    ObjectLockRetainUntilDate: new Date(now + o.retainDays * 86_400_000),
    // Never replace an object already there (a second write of a digest, or a forged one, is refused: 412).
    IfNoneMatch: '*',
    // Object Lock puts need an integrity checksum; SHA-256 also lets S3 vouch for the bytes.
    ChecksumAlgorithm: 'SHA256',
    Metadata: { 'geogate-writer': e.writer, 'geogate-digest-seq': String(e.digestSeq), 'geogate-sha256': e.sha256 }
  }
}

export function s3Witness (o: S3WitnessOptions): WitnessSink & WitnessReader {
  let client: S3Client | undefined = o.client
  const sdk = async (): Promise<{ client: S3Client, mod: typeof import('@aws-sdk/client-s3') }> => {
    const mod = await s3Module()
    client ??= new mod.S3Client({ region: o.region, ...(o.endpoint === undefined ? {} : { endpoint: o.endpoint, forcePathStyle: true }) })
    return { client, mod }
  }
  return {
    name: `s3 ${o.bucket}/${o.prefix}`,
    append: async (e) => {
      const { client, mod: { PutObjectCommand } } = await sdk()
      try {
        await client.send(new PutObjectCommand(s3PutInput(o, e)))
      } catch (err) {
        // 412: already witnessed (a retry after a lost answer). Anything else is a failure to witness.
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 412) throw err
      }
    },
    list: async () => {
      const { client, mod: { ListObjectsV2Command, GetObjectCommand } } = await sdk()
      const out: WitnessEntry[] = []
      let token: string | undefined
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: o.bucket, Prefix: o.prefix, ContinuationToken: token }))
        for (const obj of page.Contents ?? []) {
          if (obj.Key === undefined) continue
          const m = /([^/]+)\/(([A-Za-z0-9.-]+)_(\d{12})\.json)$/.exec(obj.Key)
          if (m === null) continue
          const got = await client.send(new GetObjectCommand({ Bucket: o.bucket, Key: obj.Key }))
          const digest = await got.Body?.transformToString('utf8') ?? ''
          const { createHash } = await import('node:crypto')
          out.push({ writer: m[1] ?? '', digestSeq: Number(m[4]), file: m[2] ?? '', sha256: createHash('sha256').update(digest).digest('hex'), digest })
        }
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined
      } while (token !== undefined)
      return out
    },
    close: async () => { client?.destroy() }
  }
}

/** `--witness URL`: postgres://…?table=NAME (default geogate_audit_witness) or s3://bucket/prefix?region=R. */
export function witnessFromUrl (url: string, timeoutMs = 10_000): WitnessReader {
  const u = new URL(url)
  if (u.protocol === 'postgres:' || u.protocol === 'postgresql:') {
    const name = u.searchParams.get('table') ?? 'geogate_audit_witness'
    u.searchParams.delete('table')
    return postgresWitness({ url: u.toString(), table: name, timeoutMs })
  }
  if (u.protocol === 's3:') {
    return s3Witness({ bucket: u.hostname, prefix: u.pathname.replace(/^\//, ''), region: u.searchParams.get('region') ?? process.env.AWS_REGION ?? 'us-east-1', endpoint: u.searchParams.get('endpoint') ?? undefined, retainDays: 0 })
  }
  throw new Error(`--witness: postgres://… or s3://bucket/prefix, got ${u.protocol}`)
}
