import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import pino from 'pino'
import { S3Client } from '@aws-sdk/client-s3'
import { entry, signingKeyPem, tempDir } from '../helpers/audit.js'
import { runCli } from '../helpers/process.js'
import { baseConfig } from '../helpers/gateway.js'
import { parseConfig } from '../../src/config/load.js'
import { openAudit } from '../../src/audit/log.js'
import { postgresWitnessDdl, s3PutInput, s3Witness, type WitnessEntry } from '../../src/audit/anchor-witness.js'

const PG = process.env.PGHOST_TEST ?? '127.0.0.1:5432'

async function admin (database = 'postgres'): Promise<pg.Client | null> {
  const c = new pg.Client({ connectionString: `postgres://postgres@${PG}/${database}`, connectionTimeoutMillis: 3000 })
  try { await c.connect(); return c } catch { return null }
}

const probe = await admin()
await probe?.end()
if (probe === null && process.env.CI !== undefined) throw new Error(`PostgreSQL is needed at ${PG}`)

t.test('PostgreSQL witness: INSERT only for the gateway; a tail cut off with its digests is caught', { skip: probe === null ? `no PostgreSQL at ${PG}` : false }, async (t) => {
  const id = randomBytes(4).toString('hex')
  const db = `gg_witness_${id}`
  const gw = `gg_gateway_${id}`
  const aud = `gg_auditor_${id}`
  const pw = randomBytes(12).toString('hex')
  const root = await admin()
  if (root === null) throw new Error('PostgreSQL went away')
  await root.query(`CREATE ROLE ${gw} LOGIN PASSWORD '${pw}'`)
  await root.query(`CREATE ROLE ${aud} LOGIN PASSWORD '${pw}'`)
  await root.query(`CREATE DATABASE ${db}`)
  t.teardown(async () => {
    await root.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
    await root.query(`DROP ROLE IF EXISTS ${gw}`)
    await root.query(`DROP ROLE IF EXISTS ${aud}`)
    await root.end()
  })
  const owner = await admin(db)
  if (owner === null) throw new Error('no connection to the new database')
  await owner.query(postgresWitnessDdl())
  await owner.query(`GRANT INSERT ON geogate_audit_witness TO ${gw}`)
  await owner.query(`GRANT SELECT ON geogate_audit_witness TO ${aud}`)
  await owner.end()
  const gwUrl = `postgres://${gw}:${pw}@${PG}/${db}`
  const audUrl = `postgres://${aud}:${pw}@${PG}/${db}?table=geogate_audit_witness`

  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const audit = join(dir, 'audit')
  const config = parseConfig({ ...baseConfig(), audit: { dir: audit, writerId: 'w1', rotateBytes: 8192, signingKey: signingKeyPem(), witness: { postgres: { url: gwUrl } } } }, 'test')
  const a = await openAudit(config.audit, dir, pino({ level: 'silent' }))
  for (let i = 0; i < 80; i++) a.append(entry(i))
  await a.close()
  const digests = (await readdir(join(audit, 'digests'))).filter((f) => /^w1_\d{12}\.json$/.test(f)).sort()
  t.ok(digests.length >= 3, `${digests.length} digests`)

  // The gateway's role can add and nothing else.
  const asGateway = new pg.Client({ connectionString: gwUrl })
  await asGateway.connect()
  t.teardown(async () => { await asGateway.end() })
  await t.rejects(asGateway.query('DELETE FROM geogate_audit_witness'), /permission denied/)
  await t.rejects(asGateway.query("UPDATE geogate_audit_witness SET sha256 = 'x'"), /permission denied/)
  await t.rejects(asGateway.query('TRUNCATE geogate_audit_witness'), /permission denied/)
  await t.rejects(asGateway.query('SELECT * FROM geogate_audit_witness'), /permission denied/)
  // A repeat (the re-witnessing on start) is a no-op with INSERT alone.
  const again = await openAudit(config.audit, dir, pino({ level: 'silent' }))
  await again.close()

  const ok = await runCli(['audit', 'verify', audit, '--witness', audUrl])
  t.equal(ok.code, 0, ok.stdout + ok.stderr)

  // Cut the tail: the last segment and the digest that names it. The chain that remains is consistent...
  const segs = (await readdir(audit)).filter((f) => /^w1_\d{8}_\d{12}\.jsonl$/.test(f)).sort()
  await rm(join(audit, segs.at(-1) ?? ''))
  await rm(join(audit, 'digests', digests.at(-1) ?? ''))
  const alone = await runCli(['audit', 'verify', audit])
  t.equal(alone.code, 0, 'the hash chain alone cannot tell a cut-off tail')
  // ...but the witness still holds the digest.
  const cut = await runCli(['audit', 'verify', audit, '--witness', audUrl])
  t.equal(cut.code, 1)
  t.match(cut.stdout, `FAILED: digests/${digests.at(-1) ?? ''}: postgres geogate_audit_witness holds digest #${digests.length} of writer w1 (segment ${segs.at(-1) ?? ''}`)
  t.match(cut.stdout, `its digests stop at #${digests.length - 1}): the chain's tail was cut off together with its digests`)
})

t.test('S3 Object Lock witness: the PutObject request it sends (no S3 endpoint here: the request is captured, not sent)', async (t) => {
  const e: WitnessEntry = { writer: 'w1', digestSeq: 7, file: 'w1_000000000007.json', sha256: 'ab'.repeat(32), digest: '{"kind":"digest"}\n' }
  const now = Date.UTC(2026, 10, 1)
  const input = s3PutInput({ bucket: 'evidence', prefix: 'geogate-audit/', retainDays: 400 }, e, now)
  t.match(input, { Bucket: 'evidence', Key: 'geogate-audit/w1/w1_000000000007.json', ObjectLockMode: 'COMPLIANCE', IfNoneMatch: '*', ChecksumAlgorithm: 'SHA256' })
  t.equal(input.ObjectLockRetainUntilDate?.toISOString(), new Date(now + 400 * 86_400_000).toISOString())

  const sent: Array<{ method: string, path: string, headers: Record<string, string> }> = []
  let status = 200
  const client = new S3Client({
    region: 'eu-central-1',
    endpoint: 'https://s3.example.test',
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    requestHandler: {
      handle: async (req: { method: string, path: string, headers: Record<string, string> }) => {
        sent.push({ method: req.method, path: req.path, headers: req.headers })
        return { response: { statusCode: status, headers: {}, body: (await import('node:stream')).Readable.from([]) } }
      }
    }
  })
  const w = s3Witness({ bucket: 'evidence', prefix: 'geogate-audit/', region: 'eu-central-1', retainDays: 400, client })
  await w.append(e)
  const r = sent[0]
  t.equal(r?.method, 'PUT')
  t.equal(r?.path, '/evidence/geogate-audit/w1/w1_000000000007.json')
  t.equal(r?.headers['x-amz-object-lock-mode'], 'COMPLIANCE')
  t.match(r?.headers['x-amz-object-lock-retain-until-date'], /^\d{4}-\d{2}-\d{2}T/)
  t.equal(r?.headers['if-none-match'], '*')
  t.ok(r?.headers['x-amz-checksum-sha256'] !== undefined || r?.headers['x-amz-sdk-checksum-algorithm'] === 'SHA256', 'an integrity checksum (Object Lock requires one)')
  t.equal(r?.headers['x-amz-meta-geogate-sha256'], e.sha256)
  status = 412
  await w.append(e)
  t.equal(sent.length, 2, 'an object already there (412) counts as witnessed, not as a failure')
  status = 403
  await t.rejects(w.append(e), 'any other refusal is a failure to witness')
  await w.close()
})
