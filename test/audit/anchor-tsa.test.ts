import t from 'tap'
import { copyFile, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import pino from 'pino'
import { entry, signingKeyPem, tempDir } from '../helpers/audit.js'
import { runCli } from '../helpers/process.js'
import { hasOpenssl, startTsa } from '../helpers/tsa.js'
import { baseConfig } from '../helpers/gateway.js'
import { parseConfig } from '../../src/config/load.js'
import { openAudit } from '../../src/audit/log.js'
import { responseStatus, timeStampRequest } from '../../src/audit/anchor-tsa.js'

if (!hasOpenssl()) {
  if (process.env.CI !== undefined) throw new Error('openssl is needed for the RFC 3161 tests')
  t.test('RFC 3161 time-stamps', { skip: 'openssl is not on the PATH: no local time-stamp authority to test against' }, async () => {})
} else {
  t.test('the TimeStampReq is DER openssl reads: version 1, SHA-256 imprint, nonce, certReq', async (t) => {
    const hash = Buffer.alloc(32, 0xab)
    const req = timeStampRequest(hash, Buffer.from('0011223344556677', 'hex'))
    t.equal(req.toString('hex'), '3043020101303130' + '0d06096086480165030402010500' + '0420' + 'ab'.repeat(32) + '02080111223344556677' + '0101ff')
    const { execFileSync } = await import('node:child_process')
    const { dir, cleanup } = await tempDir()
    t.teardown(cleanup)
    const { writeFile } = await import('node:fs/promises')
    await writeFile(join(dir, 'q.tsq'), req)
    const text = execFileSync('openssl', ['ts', '-query', '-in', join(dir, 'q.tsq'), '-text'], { encoding: 'utf8' })
    t.match(text, /Hash Algorithm: sha256/)
    t.match(text, /Nonce: 0x0111223344556677/)
    t.match(text, /Certificate required: yes/)
    t.throws(() => timeStampRequest(Buffer.alloc(20)))
    t.throws(() => responseStatus(Buffer.from('0500', 'hex')))
  })

  t.test('digests are time-stamped by a local openssl TSA; verify --tsa-cert checks every token', async (t) => {
    const { dir, cleanup } = await tempDir()
    t.teardown(cleanup)
    const tsa = await startTsa(join(dir, 'tsa'))
    t.teardown(tsa.close)
    const other = await startTsa(join(dir, 'other'), 'Other')
    t.teardown(other.close)
    const audit = join(dir, 'audit')
    const config = parseConfig({ ...baseConfig(), audit: { dir: audit, writerId: 'w1', rotateBytes: 8192, signingKey: signingKeyPem(), tsa: { url: tsa.url } } }, 'test')
    const log = pino({ level: 'silent' })
    const a = await openAudit(config.audit, dir, log)
    for (let i = 0; i < 80; i++) a.append(entry(i))
    await a.close()
    const names = await readdir(join(audit, 'digests'))
    const digests = names.filter((f) => /^w1_\d{12}\.json$/.test(f)).sort()
    t.ok(digests.length >= 3, `${digests.length} digests`)
    t.same(names.filter((f) => f.endsWith('.tsr')).sort(), digests.map((f) => f.replace(/\.json$/, '.tsr')), 'a token beside every digest')
    t.equal(tsa.requests, digests.length)

    const ok = await runCli(['audit', 'verify', audit, '--tsa-cert', tsa.caCert])
    t.equal(ok.code, 0, ok.stdout + ok.stderr)
    t.match(ok.stdout, /w1\s+80\s.*signed final timestamped\s+sealed/)
    t.equal((await runCli(['audit', 'verify', audit, '--tsa-cert', tsa.tsaCert])).code, 0, 'the TSA certificate itself can be the pinned one')

    const wrongTsa = await runCli(['audit', 'verify', audit, '--tsa-cert', other.caCert])
    t.equal(wrongTsa.code, 1, 'tokens from another authority than the pinned one fail')
    t.match(wrongTsa.stdout, /FAILED: digests\/w1_\d{12}\.tsr: timestamp token does not vouch for/)

    // A token that does not match its digest: the first digest's token swapped for the second's.
    const d = join(audit, 'digests')
    const [t1, t2] = digests.map((f) => join(d, f.replace(/\.json$/, '.tsr')))
    await copyFile(t1 ?? '', join(dir, 'keep.tsr'))
    await copyFile(t2 ?? '', t1 ?? '')
    const swapped = await runCli(['audit', 'verify', audit, '--tsa-cert', tsa.caCert])
    t.equal(swapped.code, 1)
    t.match(swapped.stdout, `FAILED: digests/${(digests[0] ?? '').replace(/\.json$/, '.tsr')}: timestamp token does not vouch for ${digests[0] ?? ''}`)
    await copyFile(join(dir, 'keep.tsr'), t1 ?? '')

    // A digest without its token, under audit.tsa.
    await rm(t2 ?? '')
    const missing = await runCli(['audit', 'verify', audit, '--tsa-cert', tsa.caCert])
    t.equal(missing.code, 1)
    t.match(missing.stdout, `FAILED: digests/${digests[1] ?? ''}: no timestamp token`)
    t.equal((await runCli(['audit', 'verify', audit])).code, 0, 'without --tsa-cert the chain alone still verifies')

    // The next start stamps what an earlier run left unstamped.
    const b = await openAudit(config.audit, dir, log)
    await b.close()
    t.equal((await runCli(['audit', 'verify', audit, '--tsa-cert', tsa.caCert])).code, 0, 'caught up on restart')
  })

  t.test('an unreachable TSA never holds up the log; the digest is stamped once it answers', async (t) => {
    const { dir, cleanup } = await tempDir()
    t.teardown(cleanup)
    const audit = join(dir, 'audit')
    const config = parseConfig({ ...baseConfig(), audit: { dir: audit, writerId: 'w1', tsa: { url: 'http://127.0.0.1:9/tsa', timeoutMs: 500 } } }, 'test')
    const a = await openAudit(config.audit, dir, pino({ level: 'silent' }))
    a.append(entry(1))
    await a.flush()
    // Digests are written at segment close; the periodic one is not due, so close and reopen to make one, then
    // watch the anchor's account of it while the TSA is down (geogate_audit_anchor_pending / _failures_total).
    await a.close()
    const down = await openAudit(config.audit, dir, pino({ level: 'silent' }))
    const stats = (down as unknown as { anchorStats: () => { pending: number, failures: number } }).anchorStats
    const deadline = Date.now() + 10_000
    while (stats().failures === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    t.ok(stats().failures >= 1, 'the failed attempt is counted')
    t.ok(stats().pending >= 1, 'the digest stays queued')
    await down.close()
    t.same((await readdir(join(audit, 'digests'))).filter((f) => f.endsWith('.tsr')), [], 'no token, and close did not hang')
    const tsa = await startTsa(join(dir, 'tsa'))
    t.teardown(tsa.close)
    const again = parseConfig({ ...baseConfig(), audit: { dir: audit, writerId: 'w1', tsa: { url: tsa.url } } }, 'test')
    const b = await openAudit(again.audit, dir, pino({ level: 'silent' }))
    await b.close()
    const r = await runCli(['audit', 'verify', audit, '--tsa-cert', tsa.caCert])
    t.equal(r.code, 0, r.stdout)
  })
}
