/*
 * The writer seals records from their JSON bytes (sealBytes); verify, recovery and the tools read lines as
 * sealJson defines them. The two must give the same bytes and hash for any record: non-ASCII text, escapes,
 * nested values, an empty object.
 */
import t from 'tap'
import { GENESIS, checkLine, sealBytes, sealJson } from '../../src/audit/chain.js'

const records: unknown[] = [
  {},
  { kind: 'interaction', requestId: 'r-1', country: 'DE', anonymizer: [], status: 200 },
  { kind: 'interaction', org: 'Zürich AG — 東京 ☃', note: 'line\nbreak "quoted" \\ back', n: null, nested: { a: [1, 2, { b: 'c' }] } },
  { kind: 'system', ts: '2026-12-01T00:00:00.000Z', event: 'recovered', detail: { unknownOutcomes: 3, lastSeq: 99 } },
  { kind: 'interaction', emoji: '🙂'.repeat(300), big: 'x'.repeat(5000) }
]

t.test('sealBytes gives sealJson\'s line and hash, byte for byte', async (t) => {
  let prev = GENESIS
  let seq = 0
  for (const r of records) {
    seq++
    const json = JSON.stringify(r)
    const want = sealJson(json, 'gw-a.1', seq, prev)
    const bytes = Buffer.from(json)
    const got = sealBytes(bytes, 'gw-a.1', seq, prev)
    t.equal(got.hash, want.hash, `hash of ${json.slice(0, 40)}`)
    const line = Buffer.concat([bytes.subarray(0, bytes.length - 1), Buffer.from(got.tail, 'latin1')])
    t.equal(line.toString('utf8'), want.line, 'the same line')
    t.equal(line.length, bytes.length - 1 + got.tail.length, 'the tail is one byte per character (ASCII)')
    const c = checkLine(want.line.slice(0, -1))
    t.ok(c.ok, 'and the line checks')
    prev = got.hash
  }
})
