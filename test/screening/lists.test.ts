import t from 'tap'
import { cslCsv, cslJson, sourceFor } from '../../src/screening/csl.js'
import { ScreeningIndex } from '../../src/screening/match.js'
import { nameTokens } from '../../src/screening/normalise.js'
import { ScreeningImportError } from '../../src/screening/types.js'
import { cslCsvText, cslJsonText, PARTIES, SDN_LIST } from '../helpers/screening.js'

function issuesOf (fn: () => unknown): Array<{ line: number, field: string, message: string }> {
  try { fn() } catch (err) { if (err instanceof ScreeningImportError) return err.issues; throw err }
  throw new Error('expected the list to be refused')
}

t.test('the CSV and JSON downloads parse to the same entries', async (t) => {
  const csv = cslCsv.parse(cslCsvText(PARTIES))
  const json = cslJson.parse(cslJsonText(PARTIES))
  t.equal(csv.entries.length, 5)
  t.equal(csv.rows, 5)
  t.same(csv.entries, json.entries, 'one entry per party, field for field')
  const z = csv.entries.find((e) => e.entityNumber === '1002')
  t.equal(z?.id, 'SDN:1002', 'id: the list abbreviation and the entity number')
  t.equal(z?.source, SDN_LIST)
  t.same(z?.altNames, ['OOO Zvezdolet', 'ООО «Звездолёт»', 'Zvezdolet LLC'], 'alt names split on ;')
  t.same(z?.addresses, [{ address: 'ul. Lesnaya 5', city: 'Moscow', state: null, postalCode: '125047', country: 'RU' }])
  t.same(csv.entries[0]?.websites, ['dragonfly-micro.example'], 'web sites from the ids')
  t.equal(json.date, '2026-11-30T00:00:00.000Z', 'JSON: the date of the sources used')
  t.equal(csv.date, null, 'CSV: no date in the file')
  t.equal(sourceFor('consolidated.csv', 'x').format, 'us-csl-csv')
  t.equal(sourceFor('download', '{"results": []}').format, 'us-csl-json')
})

t.test('a malformed CSV is refused with the line and the field', async (t) => {
  const good = cslCsvText(PARTIES).split('\n')
  // a row cut short, as a truncated download leaves it
  const cut = [...good.slice(0, 4), good[4]?.slice(0, 40) ?? ''].join('\n')
  const i1 = issuesOf(() => cslCsv.parse(cut))
  t.equal(i1[0]?.line, 5, 'the cut row')
  t.match(i1[0]?.message, /fields where the header has 29/)
  // an open quote at the end of the file
  const i2 = issuesOf(() => cslCsv.parse(good.slice(0, 3).join('\n') + '\n"1009,Entity List'))
  t.equal(i2[0]?.line, 4)
  t.match(i2[0]?.message, /never closed/)
  // an empty name and a bad country, on their lines
  const rows = cslCsvText([{ id: '1', name: 'Fine Org' }, { id: '2', name: ' ' }, { id: '3', name: 'Bad Country Org', addresses: [['x', 'y', '', '', 'Russia']] }])
  const i3 = issuesOf(() => cslCsv.parse(rows))
  t.same(i3.map((i) => [i.line, i.field]), [[3, 'name'], [4, 'addresses']])
  t.match(i3[1]?.message, /"Russia" is not an ISO 3166-1 alpha-2 code/)
  // a header without the published columns
  const i4 = issuesOf(() => cslCsv.parse('name,country\nAcme,US\n'))
  t.ok(i4.some((i) => i.line === 1 && i.field === 'source'), 'missing columns named')
  const i5 = issuesOf(() => cslCsv.parse(cslCsvText([{ id: '1', name: 'Org', startDate: '05/01/2024' }])))
  t.same([i5[0]?.line, i5[0]?.field], [2, 'start_date'])
})

t.test('a malformed JSON list is refused with the line and the field', async (t) => {
  const text = cslJsonText(PARTIES)
  const i1 = issuesOf(() => cslJson.parse(text.slice(0, text.length - 200)))
  t.equal(i1[0]?.field, 'json', 'cut short: not JSON')
  t.ok((i1[0]?.line ?? 0) > 1)
  const doc = JSON.parse(text) as { results: Array<Record<string, unknown>> }
  const r2 = doc.results[2]
  if (r2 !== undefined) r2.name = ''
  const r3 = doc.results[3]
  if (r3 !== undefined) r3.alt_names = 42
  const pretty = JSON.stringify(doc, null, 2)
  const i2 = issuesOf(() => cslJson.parse(pretty))
  const lineOf = (n: number): number => pretty.split('\n').findIndex((l) => l.includes(`"_id": "${PARTIES[n]?.id ?? ''}"`)) // the line after the entry's "{"
  t.same(i2.map((i) => [i.line, i.field]), [[lineOf(2), 'name'], [lineOf(3), 'alt_names']], 'each entry named by the line it starts on')
  t.same(issuesOf(() => cslJson.parse('{"total": 0}')).map((i) => i.field), ['results'])
})

t.test('normalisation: case, accents, scripts, punctuation and legal forms', async (t) => {
  t.same(nameTokens('SHENZHEN DRAGONFLY MICROELECTRONICS CO., LTD.'), ['shenzhen', 'dragonfly', 'microelectronics'])
  t.same(nameTokens('ООО «Звездолёт»'), ['zvezdolet'], 'Cyrillic transliterated, OOO dropped')
  t.same(nameTokens('Nordwind Präzisionstechnik G.m.b.H.'), ['nordwind', 'prazisionstechnik'])
  t.same(nameTokens('Ελληνική Ναυτιλιακή Α.Ε.'), ['elliniki', 'naytiliaki', 'ae'], 'Greek transliterated')
  t.same(nameTokens('Joint Stock Company "Tupolev"'), ['tupolev'])
  t.same(nameTokens('Holding Company Ltd'), ['holding', 'company', 'ltd'], 'a name of legal forms only keeps them')
})

t.test('matching: variants and legal suffixes score high, near misses lower, strangers not at all', async (t) => {
  const ix = new ScreeningIndex(cslCsv.parse(cslCsvText(PARTIES)).entries)
  const score = (org: string, country?: string): number => ix.match({ org, country }, 0, 1)[0]?.score ?? 0
  t.ok(score('Shenzhen Dragon-fly Microelectronics Company Limited', 'CN') >= 0.95, 'punctuation and legal suffix')
  t.ok(score('Zvezdolet OOO') >= 0.95, 'legal form on the other side')
  t.ok(score('Звездолет', 'RU') >= 0.95, 'in Cyrillic, ё written е')
  t.ok(score('Nordwind Prazisionstechnik AG') >= 0.95, 'other legal form, no umlaut')
  t.ok(score('Kestrel Avionix Trading FZCO') >= 0.85, 'a misspelt token')
  const near = score('Aurora Photonic Systems')
  t.ok(near >= 0.5 && near < 0.92, `near miss in between (${near})`)
  t.equal(score('Completely Unrelated Bakery'), 0)
  const m = ix.match({ org: 'dragonfly micro', domain: 'https://www.dragonfly-micro.example/about' }, 0.5, 3)[0]
  t.equal(m?.domain, true, 'the web site matched')
  t.equal(m?.score, 1)
  t.equal(m?.source, 'Entity List (EL) - Bureau of Industry and Security', 'the match names its list')
  const far = ix.match({ org: 'Zvezdolet', country: 'US' }, 0, 1)[0]
  t.equal(far?.country, 'different', 'an address elsewhere lowers the score')
  t.ok((far?.score ?? 0) < (far?.nameScore ?? 0))
})
