/*
 * Fuzzy matching of a party against every name and alt name of a list.
 *
 *   name ─► tokens (normalise.ts) ─► candidates: names sharing a token, or a token one edit away
 *        ─► score each candidate: token-set similarity, tokens weighted by rarity (IDF), per-token
 *           normalised Levenshtein (fastest-levenshtein) ─► country and domain adjust ─► best per entry
 *
 * Rare tokens decide ("Huawei"), common ones ("international", "trading") count little, so a shared common
 * word is not a hit. Candidates come from an index (tokens and their one-deletion variants, as in SymSpell),
 * so a party is compared with tens of names, not the whole list.
 */
import { distance } from 'fastest-levenshtein'
import { nameTokens } from './normalise.js'
import { websiteHost } from './csl.js'
import type { Party, ScreeningEntry, ScreeningMatch } from './types.js'

interface IndexedName { entry: number, name: string, tokens: string[], compact: string }

/** A query token and a list token this similar (1 − edits / longer length) are the same token, misspelled. */
const TOKEN_SIM = 0.75
/** Tokens shorter than this match only exactly (one edit in "ZTE" is another company). */
const FUZZY_MIN_LEN = 4
/** Tokens on more than this share of entries do not bring candidates on their own. */
const COMMON_SHARE = 0.02
const MAX_CANDIDATES = 5000
/** candidates scored in full, those sharing the most weight with the query */
const SCORED = 200
const COUNTRY_BONUS = 0.03
const COUNTRY_PENALTY = 0.05

function deletions (t: string): string[] {
  const out: string[] = []
  for (let i = 0; i < t.length; i++) out.push(t.slice(0, i) + t.slice(i + 1))
  return out
}

function similarity (a: string, b: string): number {
  if (a === b) return 1
  const max = Math.max(a.length, b.length)
  return max === 0 ? 0 : 1 - distance(a, b) / max
}

export class ScreeningIndex {
  readonly entries: readonly ScreeningEntry[]
  readonly #names: IndexedName[] = []
  readonly #byToken = new Map<string, number[]>()
  /** entries (not names) a token appears in */
  readonly #df = new Map<string, number>()
  readonly #variants = new Map<string, string[]>()
  readonly #websites = new Map<string, number[]>()
  readonly #unseenWeight: number

  constructor (entries: readonly ScreeningEntry[]) {
    this.entries = entries
    entries.forEach((e, ei) => {
      const seen = new Set<string>()
      for (const name of [e.name, ...e.altNames]) {
        const tokens = nameTokens(name)
        if (tokens.length === 0) continue
        const ni = this.#names.length
        this.#names.push({ entry: ei, name, tokens, compact: tokens.join('') })
        for (const t of new Set(tokens)) {
          let l = this.#byToken.get(t)
          if (l === undefined) { l = []; this.#byToken.set(t, l) }
          l.push(ni)
          seen.add(t)
        }
      }
      for (const t of seen) this.#df.set(t, (this.#df.get(t) ?? 0) + 1)
      for (const w of e.websites) {
        const l = this.#websites.get(w)
        if (l === undefined) this.#websites.set(w, [ei])
        else l.push(ei)
      }
    })
    for (const t of this.#byToken.keys()) {
      if (t.length < FUZZY_MIN_LEN) continue
      for (const v of [t, ...deletions(t)]) {
        const l = this.#variants.get(v)
        if (l === undefined) this.#variants.set(v, [t])
        else l.push(t)
      }
    }
    this.#unseenWeight = Math.log(1 + entries.length)
  }

  get names (): number { return this.#names.length }

  /**
   * IDF, squared: a token on one entry in 30,000 weighs ~100, one on every 30th (a city, "Technology") ~12, so a
   * name that shares only such words with a listed one stays far from it, and one that lacks them stays close.
   */
  #weight (t: string): number {
    const df = this.#df.get(t)
    const idf = df === undefined ? this.#unseenWeight : Math.log(1 + this.entries.length / df)
    return idf * idf
  }

  /** List tokens the same as, or one edit from, a query token. */
  #near (q: string): string[] {
    const out = new Set<string>()
    if (this.#byToken.has(q)) out.add(q)
    if (q.length >= FUZZY_MIN_LEN) {
      for (const v of [q, ...deletions(q)]) {
        for (const t of this.#variants.get(v) ?? []) if (similarity(q, t) >= TOKEN_SIM) out.add(t)
      }
    }
    return [...out]
  }

  /** Token-set similarity of a query with one list name, 0..1. */
  #score (q: readonly string[], qCompact: string, n: IndexedName): number {
    const used = new Set<number>()
    let matched = 0
    let qWeight = 0
    for (const qt of q) {
      let best = -1
      let bestSim = 0
      n.tokens.forEach((ct, i) => {
        if (used.has(i)) return
        const s = qt === ct ? 1 : (qt.length >= FUZZY_MIN_LEN && ct.length >= FUZZY_MIN_LEN ? similarity(qt, ct) : 0)
        if (s >= TOKEN_SIM && s > bestSim) { best = i; bestSim = s }
      })
      if (best >= 0) {
        used.add(best)
        // a misspelt query token weighs what the list token it matched weighs
        const w = this.#weight(n.tokens[best] as string)
        matched += bestSim * w
        qWeight += w
      } else {
        qWeight += this.#weight(qt)
      }
    }
    let cWeight = 0
    for (const ct of n.tokens) cWeight += this.#weight(ct)
    const dice = (2 * matched) / (qWeight + cWeight)
    // the same letters, spaced differently ("Dragontech" / "Dragon Tech"): whole-name similarity, when close
    const whole = similarity(qCompact, n.compact)
    return Math.max(dice, whole >= 0.9 ? whole : 0)
  }

  /** Every entry scoring at least `minScore`, best first. */
  match (party: Party, minScore: number, limit = 10): ScreeningMatch[] {
    const q = nameTokens(party.org)
    const best = new Map<number, ScreeningMatch>()
    const country = party.country?.toUpperCase()
    const push = (m: ScreeningMatch, ei: number): void => {
      const cur = best.get(ei)
      if (cur === undefined || m.score > cur.score) best.set(ei, m)
    }
    const describe = (e: ScreeningEntry, matchedName: string, nameScore: number, domain: boolean): ScreeningMatch => {
      const countries = new Set(e.addresses.map((a) => a.country).filter((c): c is string => c !== null))
      const rel = country === undefined || countries.size === 0 ? null : countries.has(country) ? 'same' : 'different'
      const adjusted = domain ? 1 : Math.min(1, Math.max(0, nameScore + (rel === 'same' ? COUNTRY_BONUS : rel === 'different' ? -COUNTRY_PENALTY : 0)))
      return {
        entryId: e.id, entryName: e.name, matchedName, source: e.source, programs: e.programs,
        score: Math.round(adjusted * 1000) / 1000, nameScore: Math.round(nameScore * 1000) / 1000, country: rel, domain
      }
    }
    const host = party.domain === undefined ? null : websiteHost(party.domain)
    if (host !== null) {
      for (const ei of this.#websites.get(host) ?? []) {
        const e = this.entries[ei]
        if (e !== undefined) push(describe(e, host, 1, true), ei)
      }
    }
    if (q.length > 0) {
      const qCompact = q.join('')
      const common = this.entries.length * COMMON_SHARE
      const near = q.map((t) => this.#near(t))
      const rare = near.map((ts) => ts.filter((t) => (this.#df.get(t) ?? 0) <= common))
      // names sharing a rare token; when every token is common, names sharing any
      const from = rare.some((ts) => ts.length > 0) ? rare : near
      // what each candidate shares with the query (by weight): only the best few can score high, so only they are scored
      const shared = new Map<number, number>()
      for (const ts of from) {
        for (const t of ts) {
          const w = this.#weight(t)
          for (const ni of this.#byToken.get(t) ?? []) {
            const cur = shared.get(ni)
            if (cur !== undefined) shared.set(ni, cur + w)
            else if (shared.size < MAX_CANDIDATES) shared.set(ni, w)
          }
        }
      }
      const candidates = shared.size <= SCORED ? [...shared.keys()] : [...shared].sort((a, b) => b[1] - a[1]).slice(0, SCORED).map(([ni]) => ni)
      for (const ni of candidates) {
        const n = this.#names[ni]
        if (n === undefined) continue
        const s = this.#score(q, qCompact, n)
        const e = this.entries[n.entry]
        if (e !== undefined && s >= minScore - COUNTRY_BONUS) push(describe(e, n.name, s, false), n.entry)
      }
    }
    return [...best.values()].filter((m) => m.score >= minScore).sort((a, b) => b.score - a.score || a.entryId.localeCompare(b.entryId)).slice(0, limit)
  }
}
