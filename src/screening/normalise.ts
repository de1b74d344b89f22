/*
 * Organisation names → comparable tokens: other scripts transliterated to Latin (Cyrillic, Greek, CJK, … via
 * any-ascii), accents dropped (NFKD), case folded, punctuation removed, and legal forms (GmbH, LLC, Co. Ltd,
 * OOO, PJSC, …) taken out, so "ООО «Ромашка»" and "Romashka LLC" compare as the same name.
 */
import anyAscii from 'any-ascii'

/** Legal-form tokens, in many languages and their transliterations. Removed wherever they stand. */
const LEGAL = new Set([
  // English
  'inc', 'incorporated', 'corp', 'corporation', 'co', 'company', 'companies', 'ltd', 'limited', 'llc', 'llp', 'lp',
  'plc', 'pllc', 'pte', 'pty', 'pvt', 'private', 'public', 'holding', 'holdings', 'group', 'the',
  // German, Dutch, Nordic
  'gmbh', 'mbh', 'ag', 'kg', 'kgaa', 'ohg', 'ug', 'ev', 'bv', 'nv', 'vof', 'ab', 'as', 'asa', 'oy', 'oyj', 'aps',
  // Romance
  'sa', 'sas', 'sasu', 'sarl', 'srl', 'spa', 'sl', 'slu', 'sau', 'sca', 'snc', 'ltda', 'eirl', 'cie',
  // Slavic and post-Soviet (transliterated)
  'ooo', 'oao', 'zao', 'pao', 'ao', 'ip', 'tov', 'pat', 'prat', 'dp', 'sp', 'zoo', 'doo', 'dd', 'ad', 'eood', 'ood',
  'sro', 'as', 'jsc', 'ojsc', 'cjsc', 'pjsc', 'jsco',
  // Asia, Middle East
  'kk', 'kabushiki', 'kaisha', 'yk', 'bhd', 'sdn', 'tbk', 'pt', 'fze', 'fzco', 'fzc', 'fzllc', 'wll', 'jv'
])

/** Multi-word legal forms, spelled out: removed as a run before single tokens are looked at. */
const LEGAL_RUNS: string[][] = [
  ['joint', 'stock', 'company'], ['open', 'joint', 'stock', 'company'], ['closed', 'joint', 'stock', 'company'],
  ['public', 'joint', 'stock', 'company'], ['limited', 'liability', 'company'], ['sp', 'z', 'o', 'o'],
  ['s', 'a'], ['s', 'r', 'l'], ['b', 'v'], ['n', 'v'], ['l', 'l', 'c'], ['co', 'ltd'],
  ['obshchestvo', 's', 'ogranichennoi', 'otvetstvennostyu'], ['obshchestvo', 's', 'ogranichennoi', 'otvetstvennostiu'],
  ['obshchestvo', 's', 'ogranichennoy', 'otvetstvennostyu'], ['aktsionernoe', 'obshchestvo'],
  ['publichnoe', 'aktsionernoe', 'obshchestvo'], ['tovarystvo', 'z', 'obmezhenoiu', 'vidpovidalnistiu'], ['tovaristvo', 'z', 'obmezhenoyu', 'vidpovidalnistyu']
]

function dropRuns (tokens: string[]): string[] {
  const out: string[] = []
  let i = 0
  outer: while (i < tokens.length) {
    for (const run of LEGAL_RUNS) {
      if (run.every((t, k) => tokens[i + k] === t)) { i += run.length; continue outer }
    }
    out.push(tokens[i] as string)
    i++
  }
  return out
}

/** Case, accents, scripts and punctuation folded; every token kept (legal forms too). */
export function foldName (name: string): string[] {
  // plain ASCII (most names) needs neither decomposition nor transliteration
  const latin = /^[\x00-\x7f]*$/.test(name) ? name : anyAscii(name.normalize('NFKD').replace(/\p{M}/gu, ''))
  return latin
    .toLowerCase()
    .replace(/&/g, ' and ')
    // dotted abbreviations and apostrophes join up: "S.A." → "sa", "O'Brien" → "obrien"
    .replace(/(?<=[a-z0-9])[.'’](?=[a-z0-9])/g, '')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter((t) => t !== '')
}

/**
 * The name's distinctive tokens, in order: folded, legal forms removed. A name that is nothing but legal forms
 * ("Holding Company Ltd") keeps its folded tokens, so it is still comparable.
 */
export function nameTokens (name: string): string[] {
  const folded = foldName(name)
  const kept = dropRuns(folded).filter((t) => !LEGAL.has(t) && t !== 'and' && t !== 'of')
  return kept.length > 0 ? kept : folded
}
