/*
 * Screening at the real list's size: a generated Consolidated Screening List of 30,000 entries (the real one has
 * about that many, with alt names) in the official CSV layout, then
 *   - import: parse + validate, index, store (files; and Redis when one answers on REDIS_URL / 127.0.0.1:6379)
 *   - match throughput: parties screened per second (listed-variant and unlisted names)
 *   - false positives / negatives on a constructed test set (see `testSet` for how it is built)
 * Run: npm run bench -- screening   (SCREENING_ENTRIES=N to change the size)
 */
import { performance } from 'node:perf_hooks'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Redis } from 'ioredis'
import { cslCsv } from '../../src/screening/csl.js'
import { ScreeningIndex } from '../../src/screening/match.js'
import { ScreeningService } from '../../src/screening/service.js'
import { FileScreeningStore, RedisScreeningStore } from '../../src/screening/store.js'
import { cslCsvText, ENTITY_LIST, SDN_LIST, MEU_LIST, type TestParty } from '../helpers/screening.js'

const N = Number(process.env.SCREENING_ENTRIES ?? 30_000)
const BLOCK = Number(process.env.SCREENING_BLOCK ?? 0.92)
const REVIEW = Number(process.env.SCREENING_REVIEW ?? 0.8)

// A deterministic generator (mulberry32), so every run builds the same list and test set.
function rng (seed: number): () => number {
  let a = seed
  return () => {
    a |= 0; a = (a + 0x6D2B79F5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const rand = rng(20261201)
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T

// Syllables whose Latin and Cyrillic spellings map one to one (so a Cyrillic variant can be written).
const SYL = ['ka', 'ro', 'ma', 'ne', 'ti', 'vo', 'la', 'da', 'se', 'po', 'mi', 'ra', 'no', 'le', 'ta', 'ko', 'zi', 'be', 'du', 'fa', 'go', 'lu', 'na', 'ri', 'sa', 'tu', 'vi', 'mo', 'pe', 'di']
const CYR: Record<string, string> = { a: 'а', b: 'б', d: 'д', e: 'е', f: 'ф', g: 'г', i: 'и', k: 'к', l: 'л', m: 'м', n: 'н', o: 'о', p: 'п', r: 'р', s: 'с', t: 'т', u: 'у', v: 'в', z: 'з' }
const CITIES = ['Shenzhen', 'Beijing', 'Shanghai', 'Moscow', 'Tehran', 'Dubai', 'Minsk', 'Hong Kong', 'Wuhan', 'Novosibirsk', 'Harbin', 'Chengdu', 'Saint Petersburg', 'Tianjin', 'Karaj']
const WORDS = ['Technology', 'Electronics', 'Trading', 'Industrial', 'International', 'Aviation', 'Precision', 'Machinery', 'Semiconductor', 'Logistics', 'Research Institute', 'Engineering', 'Import Export', 'Systems', 'Photonics', 'Shipping', 'Energy', 'Microelectronics', 'Optics', 'Defense']
const LEGAL = ['Co., Ltd.', 'Limited', 'LLC', 'OOO', 'JSC', 'GmbH', 'FZE', 'Inc.', 'Company Limited', 'PJSC', 'AO', 'Ltd']
const SOURCES = [ENTITY_LIST, SDN_LIST, MEU_LIST]
const COUNTRIES = ['CN', 'RU', 'IR', 'AE', 'BY', 'HK', 'KP', 'SY']

const coin = (): string => { let s = ''; const n = 3 + Math.floor(rand() * 2); for (let i = 0; i < n; i++) s += pick(SYL); return s[0]?.toUpperCase() + s.slice(1) }
const cyrillic = (s: string): string => [...s.toLowerCase()].map((c) => CYR[c] ?? c).join('')

interface Gen { core: string[], name: string, party: TestParty }

function generate (n: number): Gen[] {
  const out: Gen[] = []
  const seen = new Set<string>()
  while (out.length < n) {
    const core = [coin(), ...(rand() < 0.4 ? [coin()] : [])]
    const key = core.join(' ').toLowerCase()
    if (seen.has(key)) continue
    seen.add(key)
    const city = rand() < 0.35 ? [pick(CITIES)] : []
    const words = rand() < 0.6 ? [pick(WORDS)] : []
    const name = [...city, ...core, ...words, pick(LEGAL)].join(' ')
    const alts: string[] = []
    if (rand() < 0.5) alts.push([...core, ...words, pick(LEGAL)].join(' '))
    if (rand() < 0.3) alts.push(`OOO «${cyrillic(core.join(' '))}»`)
    if (rand() < 0.3) alts.push(core.map((c) => c.toUpperCase()).join('-'))
    const country = pick(COUNTRIES)
    out.push({ core, name, party: { id: String(100000 + out.length), name, altNames: alts, source: pick(SOURCES), addresses: [[`${Math.floor(rand() * 200)} ${coin()} Street`, city[0] ?? coin(), '', String(100000 + Math.floor(rand() * 800000)), country]] } })
  }
  return out
}

const typo = (s: string): string => {
  const i = 1 + Math.floor(rand() * (s.length - 2))
  return s.slice(0, i) + (s[i] === 'a' ? 'e' : 'a') + s.slice(i + 1)
}

/**
 * The test set, constructed from the generated list: four kinds of positives (each of a listed entry) and two of
 * negatives (never listed):
 *   P-suffix   the core name, another legal form, other case and punctuation           → should block
 *   P-reorder  the core tokens reversed, a legal form                                   → should block
 *   P-cyrillic the core name written in Cyrillic, with ООО                              → should block
 *   P-typo     one letter changed in the longest core token (length ≥ 6)                → should at least review
 *   N-coined   new coined names from the same syllables, not on the list               → should be clear
 *   N-common   the list's common words only ("Shenzhen Technology Trading Co., Ltd.")   → should be clear
 */
function testSet (list: Gen[]): Array<{ kind: string, org: string, expect: 'block' | 'review' | 'clear' }> {
  const out: Array<{ kind: string, org: string, expect: 'block' | 'review' | 'clear' }> = []
  const sample = (k: number): Gen[] => Array.from({ length: k }, () => pick(list))
  for (const g of sample(500)) out.push({ kind: 'P-suffix', org: `${g.core.join(' ').toUpperCase()}, ${pick(['L.L.C.', 'GMBH', 'S.A.', 'CO. LTD', 'Limited'])}`, expect: 'block' })
  for (const g of sample(300).filter((x) => x.core.length > 1)) out.push({ kind: 'P-reorder', org: `${[...g.core].reverse().join(' ')} Ltd`, expect: 'block' })
  for (const g of sample(300)) out.push({ kind: 'P-cyrillic', org: `ООО ${cyrillic(g.core.join(' '))}`, expect: 'block' })
  for (const g of sample(1000)) {
    const longest = [...g.core].sort((a, b) => b.length - a.length)[0] ?? ''
    if (longest.length < 6) continue
    out.push({ kind: 'P-typo', org: g.core.map((c) => (c === longest ? typo(c) : c)).join(' ') + ' LLC', expect: 'review' })
  }
  const listed = new Set(list.map((g) => g.core.join(' ').toLowerCase()))
  let made = 0
  while (made < 1000) {
    const core = [coin(), ...(rand() < 0.4 ? [coin()] : [])]
    if (listed.has(core.join(' ').toLowerCase())) continue
    out.push({ kind: 'N-coined', org: `${core.join(' ')} ${pick(LEGAL)}`, expect: 'clear' })
    made++
  }
  for (let i = 0; i < 300; i++) out.push({ kind: 'N-common', org: `${pick(CITIES)} ${pick(WORDS)} ${pick(WORDS)} ${pick(LEGAL)}`, expect: 'clear' })
  return out
}

const log = pino({ level: 'silent' })
const gen = generate(N)
const csv = cslCsvText(gen.map((g) => g.party))
const alts = gen.reduce((n, g) => n + (g.party.altNames?.length ?? 0), 0)
process.stdout.write(`list: ${N.toLocaleString('en-US')} entries, ${alts.toLocaleString('en-US')} alt names, CSV ${(csv.length / 1048576).toFixed(1)} MiB\n`)

let t0 = performance.now()
const parsed = cslCsv.parse(csv)
const parseMs = performance.now() - t0
t0 = performance.now()
const index = new ScreeningIndex(parsed.entries)
const indexMs = performance.now() - t0
process.stdout.write(`parse + validate ${parseMs.toFixed(0)} ms · index ${indexMs.toFixed(0)} ms (${index.names.toLocaleString('en-US')} names) · heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MiB\n`)

const config = () => ({ blockScore: BLOCK, reviewScore: REVIEW, maxAgeDays: 7, dir: '', maxBytes: 1 << 30, minRowsRatio: 0.5 })
const dir = await mkdtemp(join(tmpdir(), 'geogate-bench-screening-'))
try {
  const files = await ScreeningService.open(new FileScreeningStore(dir), { config, log })
  t0 = performance.now()
  await files.import(csv, { fileName: 'consolidated.csv', date: '2026-11-30' })
  process.stdout.write(`import (parse, validate, store in files, index): ${(performance.now() - t0).toFixed(0)} ms\n`)
  await files.close()
} finally {
  await rm(dir, { recursive: true, force: true })
}
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
try {
  await probe.connect()
  const prefix = `ggbench:screening:${process.pid}:`
  const svc = await ScreeningService.open(new RedisScreeningStore(probe, { prefix, log }), { config, log })
  t0 = performance.now()
  await svc.import(csv, { fileName: 'consolidated.csv', date: '2026-11-30' })
  process.stdout.write(`import (parse, validate, store in Redis, index): ${(performance.now() - t0).toFixed(0)} ms\n`)
  t0 = performance.now()
  const other = await ScreeningService.open(new RedisScreeningStore(probe, { prefix, log }), { config, log })
  process.stdout.write(`another replica loading it from Redis and indexing it: ${(performance.now() - t0).toFixed(0)} ms, list version ${other.info()?.version ?? '?'}\n`)
  await other.close(); await svc.close()
  for (const k of await probe.keys(`${prefix}*`)) await probe.del(k)
} catch {
  process.stdout.write('import into Redis: skipped (no Redis at ' + url + ')\n')
} finally {
  probe.disconnect()
}

const set = testSet(gen)
const verdict = (org: string): 'block' | 'review' | 'clear' => {
  const top = index.match({ org }, REVIEW, 1)[0]
  return top === undefined ? 'clear' : top.score >= BLOCK ? 'block' : 'review'
}
for (let i = 0; i < 500; i++) verdict(set[i % set.length]?.org ?? '') // warm up
t0 = performance.now()
const results = set.map((q) => ({ ...q, got: verdict(q.org) }))
const ms = performance.now() - t0
process.stdout.write(`match: ${set.length.toLocaleString('en-US')} parties in ${ms.toFixed(0)} ms = ${Math.round(set.length / (ms / 1000)).toLocaleString('en-US')} parties/s (${(ms * 1000 / set.length).toFixed(0)} µs each)\n`)
process.stdout.write(`thresholds: block ≥ ${BLOCK}, review ≥ ${REVIEW}\n`)
process.stdout.write('kind         n     block  review  clear   wrong\n')
for (const kind of ['P-suffix', 'P-reorder', 'P-cyrillic', 'P-typo', 'N-coined', 'N-common']) {
  const rs = results.filter((r) => r.kind === kind)
  const c = (v: string): number => rs.filter((r) => r.got === v).length
  const wrong = kind.startsWith('P-') ? (kind === 'P-typo' ? c('clear') : c('clear') + c('review')) : c('block') + c('review')
  process.stdout.write(`${kind.padEnd(11)} ${String(rs.length).padStart(4)}  ${String(c('block')).padStart(6)}  ${String(c('review')).padStart(6)}  ${String(c('clear')).padStart(5)}  ${String(wrong).padStart(6)}\n`)
}
const pos = results.filter((r) => r.kind.startsWith('P-'))
const neg = results.filter((r) => r.kind.startsWith('N-'))
process.stdout.write(`false negatives (listed, screened clear): ${pos.filter((r) => r.got === 'clear').length} of ${pos.length}\n`)
process.stdout.write(`false positives (unlisted, not clear): ${neg.filter((r) => r.got !== 'clear').length} of ${neg.length} (${neg.filter((r) => r.got === 'block').length} blocked, ${neg.filter((r) => r.got === 'review').length} sent to review)\n`)
const show = (kind: string): void => {
  for (const r of results.filter((x) => x.kind === kind && x.got !== x.expect).slice(0, 3)) {
    const m = index.match({ org: r.org }, 0.3, 1)[0]
    process.stdout.write(`  e.g. ${kind} "${r.org}" → ${r.got}${m === undefined ? '' : ` (${m.score} vs "${m.matchedName}")`}\n`)
  }
}
for (const k of ['P-suffix', 'P-reorder', 'P-cyrillic', 'P-typo', 'N-coined', 'N-common']) show(k)
