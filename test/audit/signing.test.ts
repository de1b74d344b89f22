import t from 'tap'
import { readFile, readdir, stat, writeFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import pino from 'pino'
import { entry, openWriter, signingKeyPem, tempDir } from '../helpers/audit.js'
import { runCli } from '../helpers/process.js'
import { buildTestGateway, baseConfig } from '../helpers/gateway.js'
import { GENESIS, loadSigner, sealDigest, sealJson, sha256, type Digest, type Signer } from '../../src/audit/chain.js'
import { DIGEST_DIR, listDigests, listSegments } from '../../src/audit/segments.js'
import { openAudit } from '../../src/audit/log.js'
import { parseConfig } from '../../src/config/load.js'

/**
 * What someone who can write the files would do: edit a record, then recompute every hash after it and re-sign
 * every digest with a key of their own (publishing its public key in digests/ as the writer does).
 */
async function resign (dir: string, signer: Signer, edit: (line: string) => string): Promise<void> {
  for (const [writer, segs] of await listSegments(dir)) {
    let prev = GENESIS
    let seq = 0
    const rewritten = new Map<string, { text: string, lastSeq: number, lastHash: string, firstSeq: number }>()
    for (const s of segs) {
      const out: string[] = []
      for (const l of (await readFile(join(dir, s.file), 'utf8')).split('\n')) {
        if (l === '') continue
        const o = JSON.parse(edit(l)) as Record<string, unknown>
        delete o.writer; delete o.seq; delete o.prev; delete o.hash
        seq++
        const sealed = sealJson(JSON.stringify(o), writer, seq, prev)
        prev = sealed.hash
        out.push(sealed.line)
      }
      const text = out.join('')
      await writeFile(join(dir, s.file), text)
      rewritten.set(s.file, { text, lastSeq: seq, lastHash: prev, firstSeq: s.firstSeq })
    }
    let prevDigest = GENESIS
    for (const d of (await listDigests(dir)).get(writer) ?? []) {
      const old = JSON.parse(await readFile(join(dir, DIGEST_DIR, d.file), 'utf8')) as Digest
      const seg = rewritten.get(old.segment)
      if (seg === undefined) throw new Error('digest of a missing segment')
      const text = sealDigest({ ...old, bytes: Buffer.byteLength(seg.text), sha256: sha256(seg.text), lastSeq: seg.lastSeq, lastHash: seg.lastHash, prevDigest }, signer)
      await writeFile(join(dir, DIGEST_DIR, d.file), text)
      prevDigest = sha256(text)
    }
  }
  for (const f of (await readdir(join(dir, DIGEST_DIR))).filter((x) => x.endsWith('.pem'))) await rm(join(dir, DIGEST_DIR, f))
  await writeFile(join(dir, DIGEST_DIR, `${signer.keyId}.pem`), signer.publicKeyPem)
  await writeFile(join(dir, DIGEST_DIR, 'public-key.pem'), signer.publicKeyPem)
}

t.test('keygen: a 0600 private key and its public key; never in the audit directory, never over a key', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const keys = join(dir, 'keys')
  const r = await runCli(['audit', 'keygen', '--out', keys])
  t.equal(r.code, 0, r.stderr)
  t.equal((await stat(join(keys, 'audit-signing.key'))).mode & 0o777, 0o600)
  const signer = loadSigner(await readFile(join(keys, 'audit-signing.key'), 'utf8'))
  t.equal(await readFile(join(keys, 'audit-signing.pub'), 'utf8'), signer.publicKeyPem)
  t.match(r.stdout, signer.keyId)
  t.equal((await runCli(['audit', 'keygen', '--out', keys])).code, 1, 'an existing key is not overwritten')
  const audit = join(dir, 'audit')
  const w = await openWriter(audit)
  w.append(entry(1))
  await w.close()
  const inside = await runCli(['audit', 'keygen', '--out', join(audit, 'keys')])
  t.equal(inside.code, 2)
  t.match(inside.stderr, /holds an audit log/)
  const cfg = join(dir, 'gg.yaml')
  await writeFile(cfg, JSON.stringify({ ...baseConfig(), audit: { dir: join(dir, 'fresh-audit') } }))
  const viaConfig = await runCli(['audit', 'keygen', '--config', cfg, '--out', join(dir, 'fresh-audit', 'k')])
  t.equal(viaConfig.code, 2)
  t.match(viaConfig.stderr, /inside the audit directory/)
})

t.test('a chain re-signed with another key verifies on its own keys and fails against the pinned key', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const audit = join(dir, 'audit')
  const real = signingKeyPem()
  const w = await openWriter(audit, { rotateBytes: 8192 }, real)
  for (let i = 0; i < 60; i++) w.append(entry(i))
  await w.close()
  const pub = join(dir, 'pinned.pub')
  await writeFile(pub, loadSigner(real).publicKeyPem)
  t.equal((await runCli(['audit', 'verify', audit, '--public-key', pub])).code, 0, 'the genuine log passes with the pinned key')
  // Rewrite history: a refused request becomes an allowed one, and everything after it is re-hashed and re-signed.
  await resign(audit, loadSigner(signingKeyPem()), (l) => l.replace('"decision":"deny"', '"decision":"allow"'))
  const own = await runCli(['audit', 'verify', audit])
  t.equal(own.code, 0, 'against the keys it carries, the rebuilt log is consistent: that is why a key is pinned')
  const pinned = await runCli(['audit', 'verify', audit, '--public-key', pub])
  t.equal(pinned.code, 1)
  t.match(pinned.stdout, /FAILED: digests\/w1_000000000001\.json: no public key [0-9a-f]{64} to check the signature with/)
})

t.test('an unsigned log says so: verify, /readyz, geogate_audit_signed', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir)
  w.append(entry(1))
  await w.close()
  const r = await runCli(['audit', 'verify', dir])
  t.equal(r.code, 0)
  t.match(r.stdout, /\(0 signed\) — UNSIGNED/)
  t.match(r.stdout, /w1\s+1\s+\S+\s+\S+\s+#1 UNSIGNED final\s+sealed/)
  t.match(r.stderr, /UNSIGNED: 1 of 1 digest\(s\) carry no signature/)

  for (const signed of [false, true]) {
    const gw = await buildTestGateway(baseConfig(undefined, { audit: signed ? { signingKey: signingKeyPem(), require: 'signed' } : {} }))
    const ready = await gw.admin.inject({ method: 'GET', url: '/readyz' })
    t.match(ready.json(), { status: 'ready', audit: { signed } })
    const m = await gw.admin.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer test-auditor' } })
    t.match(m.body, new RegExp(`^geogate_audit_signed ${signed ? 1 : 0}$`, 'm'))
    await gw.close()
  }
})

t.test('audit.require: signed refuses to start without a key; the demo key is made once, 0600', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const log = pino({ level: 'silent' })
  const base = baseConfig()
  const unsigned = parseConfig({ ...base, audit: { dir: join(dir, 'a'), require: 'signed' } }, 'test')
  await t.rejects(openAudit(unsigned.audit, dir, log), /audit.require is signed but no signing key is configured/)
  const missing = parseConfig({ ...base, audit: { dir: join(dir, 'a'), require: 'signed', signingKeyFile: join(dir, 'nope.key') } }, 'test')
  await t.rejects(openAudit(missing.audit, dir, log), /nope\.key/, 'a missing key file is an error, not a silent demo key')
  const inside = parseConfig({ ...base, audit: { dir: join(dir, 'a'), require: 'signed', signingKeyFile: join(dir, 'a', 'k.key'), generateDemoKey: true } }, 'test')
  await t.rejects(openAudit(inside.audit, dir, log), /inside audit.dir/)
  const demo = parseConfig({ ...base, audit: { dir: join(dir, 'a'), require: 'signed', signingKeyFile: join(dir, 'demo', 'k.key'), generateDemoKey: true } }, 'test')
  const a1 = await openAudit(demo.audit, dir, log)
  t.ok(a1.publicKeyPem !== null)
  await a1.close()
  t.equal((await stat(join(dir, 'demo', 'k.key'))).mode & 0o777, 0o600)
  const a2 = await openAudit(demo.audit, dir, log)
  t.equal(a2.publicKeyPem, a1.publicKeyPem, 'the same demo key on the next start')
  await a2.close()
})

t.test('the shipped configurations sign', async (t) => {
  const { loadConfig } = await import('../../src/config/load.js')
  for (const f of ['config/geogate.yaml', 'config/packs/us-ai-export-tiers.example.yaml']) {
    const { config } = await loadConfig(f, {})
    t.equal(config.audit.require, 'signed', f)
    t.equal(config.audit.signingKeyFile, 'var/demo-keys/audit-signing.key', `${f}: the demo key without AUDIT_SIGNING_KEY_FILE`)
    const withSecret = await loadConfig(f, { AUDIT_SIGNING_KEY_FILE: '/run/secrets/audit-signing-key' })
    t.equal(withSecret.config.audit.signingKeyFile, '/run/secrets/audit-signing-key', `${f}: the secret when given`)
  }
})
