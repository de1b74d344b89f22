import t from 'tap'
import { cp, readFile, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { verifyDir } from '../../src/audit/verify.js'
import { sealRecord, GENESIS } from '../../src/audit/chain.js'
import { entry, openWriter, signingKeyPem, tempDir } from '../helpers/audit.js'

/**
 * Tamper evidence: any single edited byte, deleted / inserted / reordered line, deleted or swapped segment or digest
 * makes verify fail, naming the first bad record (file, line, seq).
 */

const pem = signingKeyPem()
const { dir: root, cleanup } = await tempDir()
t.teardown(cleanup)
const pristine = join(root, 'pristine')
{
  const w = await openWriter(pristine, { rotateBytes: 4096 }, pem)
  for (let i = 0; i < 40; i++) w.append(entry(i))
  w.appendAdminChange({ ts: new Date(Date.UTC(2026, 10, 2)).toISOString(), actor: 'ops', role: 'admin', action: 'keys.create', target: 'k9', before: null, after: { id: 'k9', key: 'raw-secret' } })
  await w.close()
}
const segments = (await readdir(pristine)).filter((f) => f.endsWith('.jsonl') && f.startsWith('w1_')).sort()
const digests = (await readdir(join(pristine, 'digests'))).filter((f) => f.endsWith('.json')).sort()
const seg = (i: number): string => segments.at(i) ?? ''
const lines = async (d: string, f: string): Promise<string[]> => (await readFile(join(d, f), 'utf8')).split('\n').slice(0, -1)
const seqOf = (line: string): number => (JSON.parse(line) as { seq: number }).seq

let n = 0
async function copy (): Promise<string> {
  const d = join(root, `case-${n++}`)
  await cp(pristine, d, { recursive: true })
  return d
}

t.test('the pristine directory verifies', async (t) => {
  t.ok(segments.length >= 4, `several segments (${segments.length})`)
  const r = await verifyDir(pristine)
  t.equal(r.ok, true)
  t.equal(r.records, 41)
  t.equal(r.digests, segments.length)
  t.equal(r.signedDigests, segments.length)
  const admin = (await lines(pristine, seg(-1))).at(-1) ?? ''
  t.match(admin, /"kind":"admin"/)
  t.notMatch(admin, /raw-secret/, 'raw key material is redacted from admin changes')
})

interface Case {
  name: string
  mutate: (d: string) => Promise<void>
  file: string | RegExp
  line?: number | null
  seq?: number | null
  reason: RegExp
}

async function editLine (d: string, file: string, idx: number, fn: (l: string) => string | null): Promise<void> {
  const ls = await lines(d, file)
  const out = ls.flatMap((l, i) => { if (i !== idx) return [l]; const r = fn(l); return r === null ? [] : [r] })
  await writeFile(join(d, file), out.map((l) => l + '\n').join(''))
}

const s1 = await lines(pristine, seg(1))
const firstSeq1 = seqOf(s1[0] ?? '')

const cases: Case[] = [
  {
    name: 'one character of a field edited',
    mutate: async (d) => { await editLine(d, seg(1), 2, (l) => l.replace('"country":"', '"country":"X')) },
    file: seg(1), line: 3, seq: firstSeq1 + 2, reason: /hash does not match/
  },
  {
    name: 'tokens changed (a number)',
    mutate: async (d) => { await editLine(d, seg(0), 0, (l) => l.replace(/"tokensOut":(\d+)/, (_m, v: string) => `"tokensOut":${Number(v) + 1}`)) },
    file: seg(0), line: 1, seq: 1, reason: /hash does not match/
  },
  {
    name: 'a line deleted',
    mutate: async (d) => { await editLine(d, seg(1), 1, () => null) },
    file: seg(1), line: 2, seq: firstSeq1 + 2, reason: /expected seq/
  },
  {
    name: 'a line duplicated',
    mutate: async (d) => { await editLine(d, seg(1), 1, (l) => l + '\n' + l) },
    file: seg(1), line: 3, seq: firstSeq1 + 1, reason: /out of order or repeated/
  },
  {
    name: 'two lines swapped',
    mutate: async (d) => {
      const ls = await lines(d, seg(1))
      const [a, b] = [ls[1] ?? '', ls[2] ?? '']
      ls[1] = b
      ls[2] = a
      await writeFile(join(d, seg(1)), ls.map((l) => l + '\n').join(''))
    },
    file: seg(1), line: 2, seq: firstSeq1 + 2, reason: /expected seq/
  },
  {
    name: 'a forged record inserted with a valid own hash',
    mutate: async (d) => {
      const ls = await lines(d, seg(1))
      const prev = (JSON.parse(ls[0] ?? '') as { hash: string }).hash
      const forged = sealRecord({ kind: 'interaction', ...entry(999) }, 'w1', firstSeq1 + 1, prev).line.slice(0, -1)
      ls.splice(1, 0, forged)
      await writeFile(join(d, seg(1)), ls.map((l) => l + '\n').join(''))
    },
    file: seg(1), line: 3, seq: firstSeq1 + 1, reason: /out of order or repeated/
  },
  {
    name: 'the tail rewritten with a recomputed chain (only the signed digests can tell)',
    mutate: async (d) => {
      let prev = (JSON.parse((await lines(d, seg(0))).at(-1) ?? '') as { hash: string }).hash
      for (const f of segments.slice(1)) {
        const out = (await lines(d, f)).map((l) => {
          const r = JSON.parse(l) as Record<string, unknown>
          const seq = r.seq as number
          for (const k of ['writer', 'seq', 'prev', 'hash']) Reflect.deleteProperty(r, k)
          if (typeof r.tokensIn === 'number') r.tokensIn = 0
          const s = sealRecord(r as never, 'w1', seq, prev)
          prev = s.hash
          return s.line
        })
        await writeFile(join(d, f), out.join(''))
      }
    },
    file: seg(1), line: null, reason: /(do not match the hash in|shorter .* than) digests\//
  },
  {
    name: 'the trailing newline cut off (torn last line)',
    mutate: async (d) => {
      const f = join(d, seg(-1))
      const text = await readFile(f, 'utf8')
      await writeFile(f, text.slice(0, -1))
    },
    file: seg(-1), reason: /incomplete|longer|shorter/
  },
  {
    name: 'a middle segment deleted',
    mutate: async (d) => { await unlink(join(d, seg(2))) },
    file: seg(3), line: 1, reason: /expected seq .*missing/
  },
  {
    name: 'the first segment deleted',
    mutate: async (d) => { await unlink(join(d, seg(0))) },
    file: seg(0), seq: 1, reason: /segment is missing/
  },
  {
    name: 'the last segment deleted',
    mutate: async (d) => { await unlink(join(d, seg(-1))) },
    file: seg(-1), reason: /segment is missing/
  },
  {
    name: 'two segments swapped (contents renamed)',
    mutate: async (d) => {
      await rename(join(d, seg(1)), join(d, 'tmp'))
      await rename(join(d, seg(2)), join(d, seg(1)))
      await rename(join(d, 'tmp'), join(d, seg(2)))
    },
    file: seg(1), line: 1, reason: /expected seq/
  },
  {
    name: 'a record appended after the final digest, with a valid chain',
    mutate: async (d) => {
      const last = (await lines(d, seg(-1))).at(-1) ?? ''
      const r = JSON.parse(last) as { seq: number, hash: string }
      const extra = sealRecord({ kind: 'interaction', ...entry(1000) }, 'w1', r.seq + 1, r.hash).line
      await writeFile(join(d, seg(-1)), (await readFile(join(d, seg(-1)), 'utf8')) + extra)
    },
    file: seg(-1), reason: /longer .* than its final digest/
  },
  {
    name: 'a digest deleted',
    mutate: async (d) => { await unlink(join(d, 'digests', digests[1] ?? '')) },
    file: /^digests\//, reason: /missing or out of order/
  },
  {
    name: 'a digest edited',
    mutate: async (d) => {
      const f = join(d, 'digests', digests[0] ?? '')
      await writeFile(f, (await readFile(f, 'utf8')).replace('"records":', '"records":1'))
    },
    file: `digests/${digests[0] ?? ''}`, reason: /signature is invalid/
  },
  {
    name: 'a digest replaced by an unsigned one',
    mutate: async (d) => {
      const f = join(d, 'digests', digests[0] ?? '')
      await writeFile(f, (await readFile(f, 'utf8')).replace(/"signature":"[^"]*"/, '"signature":null'))
    },
    file: `digests/${digests[0] ?? ''}`, reason: /not signed/
  }
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const d = await copy()
    await c.mutate(d)
    const r = await verifyDir(d)
    t.equal(r.ok, false, 'verify fails')
    const p = r.problem
    if (p === null) return
    if (typeof c.file === 'string') t.equal(p.file, c.file, 'names the file')
    else t.match(p.file, c.file, 'names the file')
    if (c.line !== undefined) t.equal(p.line, c.line, 'names the line')
    if (c.seq !== undefined) t.equal(p.seq, c.seq, 'names the seq')
    t.match(p.reason, c.reason)
    await rm(d, { recursive: true, force: true })
  })
}

t.test('a pinned public key that did not sign the digests fails them', async (t) => {
  const { createPublicKey, createPrivateKey } = await import('node:crypto')
  const other = createPublicKey(createPrivateKey(signingKeyPem())).export({ type: 'spki', format: 'pem' }).toString()
  const r = await verifyDir(pristine, { publicKeys: [other] })
  t.equal(r.ok, false)
  t.match(r.problem?.reason ?? '', /no public key/)
  const mine = await readFile(join(pristine, 'digests', 'public-key.pem'), 'utf8')
  t.equal((await verifyDir(pristine, { publicKeys: [mine] })).ok, true)
})

t.test('every single byte of a segment, changed, is detected', async (t) => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const w = await openWriter(dir, {}, null)
  for (let i = 0; i < 2; i++) w.append(entry(i))
  await w.close()
  const file = (await readdir(dir)).find((f) => f.endsWith('.jsonl') && f.startsWith('w1_')) ?? ''
  const original = await readFile(join(dir, file))
  t.equal((await verifyDir(dir)).ok, true)
  let undetected = 0
  for (let i = 0; i < original.length; i++) {
    const b = Buffer.from(original)
    b[i] = (b[i] ?? 0) ^ 0x01
    await writeFile(join(dir, file), b)
    if ((await verifyDir(dir)).ok) undetected++
  }
  await writeFile(join(dir, file), original)
  t.equal(undetected, 0, `all ${original.length} single-byte edits detected`)
  t.equal(GENESIS.length, 64)
})
