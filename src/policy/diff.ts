/*
 * `geogate policy diff OLD NEW`: what a policy change does, in the terms a reviewer reads — places that change tier,
 * tiers that gain or lose models, capabilities and limits, models reclassified, keys that change tier, the schedule.
 * Compares the effective policies (each file with its schedule as of `atMs`).
 */
import { isDeepStrictEqual } from 'node:util'
import type { Config, TierConfig } from '../config/schema/index.js'
import { applySchedule } from '../config/schedule.js'
import { policyHash } from './version.js'

export interface PolicyDiffLine {
  section: 'policy' | 'locations' | 'tiers' | 'models' | 'keys' | 'quotas' | 'schedule'
  /** the place, tier, model or key concerned */
  subject: string
  change: string
}

export interface PolicyDiff { from: string, to: string, lines: PolicyDiffLine[] }

function placeTiers (c: Readonly<Config>): Map<string, string> {
  const m = new Map<string, string>()
  for (const [tier, places] of Object.entries(c.locations.tiers)) for (const p of places) m.set(p, tier)
  return m
}

function show (v: unknown): string { return v === undefined ? '(none)' : JSON.stringify(v) }

function listDelta (a: readonly string[], b: readonly string[]): { added: string[], removed: string[] } {
  return { added: b.filter((x) => !a.includes(x)), removed: a.filter((x) => !b.includes(x)) }
}

function tierLines (name: string, a: Readonly<TierConfig>, b: Readonly<TierConfig>, out: PolicyDiffLine[]): void {
  const push = (change: string): void => { out.push({ section: 'tiers', subject: name, change }) }
  if (a.deny !== b.deny) push(b.deny ? 'now refuses everything (deny)' : 'no longer refuses everything (deny removed)')
  const m = listDelta(a.models, b.models)
  if (m.added.length > 0) push(`gains models ${m.added.join(', ')}`)
  if (m.removed.length > 0) push(`loses models ${m.removed.join(', ')}`)
  if (!isDeepStrictEqual(a.classifications, b.classifications)) {
    push(`classifications ${a.classifications === undefined ? 'all' : a.classifications.join(', ') || '(none)'} → ${b.classifications === undefined ? 'all' : b.classifications.join(', ') || '(none)'}`)
  }
  const c = listDelta(a.capabilities, b.capabilities)
  if (c.added.length > 0) push(`gains capabilities ${c.added.join(', ')}`)
  if (c.removed.length > 0) push(`loses capabilities ${c.removed.join(', ')}`)
  for (const f of ['maxOutputTokens', 'maxContextTokens', 'maxChoices', 'outputTokens', 'failMode'] as const) {
    if (a[f] !== b[f]) push(`${f} ${show(a[f])} → ${show(b[f])}`)
  }
  for (const f of ['requestsPerMinute', 'tokensPerMinute', 'concurrency'] as const) {
    if (a.limits?.[f] !== b.limits?.[f]) push(`limits.${f} ${show(a.limits?.[f])} → ${show(b.limits?.[f])}`)
  }
}

/** The differences between two configurations' effective policies as of `atMs` (default now). */
export function diffPolicies (a: Readonly<Config>, b: Readonly<Config>, atMs: number = Date.now()): PolicyDiff {
  const ea = applySchedule(a, atMs)
  const eb = applySchedule(b, atMs)
  const out: PolicyDiffLine[] = []
  if (ea.policy.mode !== eb.policy.mode) out.push({ section: 'policy', subject: 'mode', change: `${ea.policy.mode} → ${eb.policy.mode}` })

  // Places: an unlisted place is in the default tier, so a change of default moves every unlisted place.
  const pa = placeTiers(ea)
  const pb = placeTiers(eb)
  for (const place of [...new Set([...pa.keys(), ...pb.keys()])].sort()) {
    const ta = pa.get(place) ?? `${ea.locations.default} (default)`
    const tb = pb.get(place) ?? `${eb.locations.default} (default)`
    if (ta !== tb) out.push({ section: 'locations', subject: place, change: `${ta} → ${tb}` })
  }
  for (const f of ['default', 'unknown', 'anonymizers', 'internal'] as const) {
    if (ea.locations[f] !== eb.locations[f]) out.push({ section: 'locations', subject: `(${f})`, change: `${show(ea.locations[f])} → ${show(eb.locations[f])}` })
  }
  if (!isDeepStrictEqual(ea.locations.anonymizerKinds, eb.locations.anonymizerKinds)) {
    out.push({ section: 'locations', subject: '(anonymizerKinds)', change: `${ea.locations.anonymizerKinds.join(', ')} → ${eb.locations.anonymizerKinds.join(', ')}` })
  }

  for (const name of [...new Set([...Object.keys(ea.tiers), ...Object.keys(eb.tiers)])].sort()) {
    const ta = Object.hasOwn(ea.tiers, name) ? ea.tiers[name] : undefined
    const tb = Object.hasOwn(eb.tiers, name) ? eb.tiers[name] : undefined
    if (ta === undefined && tb !== undefined) out.push({ section: 'tiers', subject: name, change: `added (models ${tb.models.join(', ') || '(none)'}; capabilities ${tb.capabilities.join(', ') || '(none)'}${tb.deny ? '; deny' : ''})` })
    else if (ta !== undefined && tb === undefined) out.push({ section: 'tiers', subject: name, change: 'removed' })
    else if (ta !== undefined && tb !== undefined) tierLines(name, ta, tb, out)
  }

  for (const name of [...new Set([...Object.keys(ea.models), ...Object.keys(eb.models)])].sort()) {
    const ma = Object.hasOwn(ea.models, name) ? ea.models[name] : undefined
    const mb = Object.hasOwn(eb.models, name) ? eb.models[name] : undefined
    if (ma === undefined && mb !== undefined) out.push({ section: 'models', subject: name, change: `added (${mb.classification})` })
    else if (ma !== undefined && mb === undefined) out.push({ section: 'models', subject: name, change: 'removed' })
    else if (ma !== undefined && mb !== undefined && ma.classification !== mb.classification) out.push({ section: 'models', subject: name, change: `classification ${ma.classification} → ${mb.classification}` })
  }

  const ka = new Map(ea.keys.map((k) => [k.id, k]))
  const kb = new Map(eb.keys.map((k) => [k.id, k]))
  for (const id of [...new Set([...ka.keys(), ...kb.keys()])].sort()) {
    const x = ka.get(id)
    const y = kb.get(id)
    if (x === undefined && y !== undefined) out.push({ section: 'keys', subject: id, change: `added (tier ${y.tier}, org ${y.org})` })
    else if (x !== undefined && y === undefined) out.push({ section: 'keys', subject: id, change: 'removed' })
    else if (x !== undefined && y !== undefined) {
      if (x.tier !== y.tier) out.push({ section: 'keys', subject: id, change: `tier ${x.tier} → ${y.tier}` })
      if (x.verifiedEntity !== y.verifiedEntity) out.push({ section: 'keys', subject: id, change: y.verifiedEntity ? 'now a verified entity' : 'no longer a verified entity' })
      if (x.country !== y.country) out.push({ section: 'keys', subject: id, change: `country ${show(x.country)} → ${show(y.country)}` })
      if (x.org !== y.org) out.push({ section: 'keys', subject: id, change: `org ${x.org} → ${y.org}` })
      if (x.sha256 !== y.sha256) out.push({ section: 'keys', subject: id, change: 'new secret (rotated)' })
    }
  }

  const qa = new Map(ea.quotas.map((q) => [q.id, q]))
  const qb = new Map(eb.quotas.map((q) => [q.id, q]))
  for (const id of [...new Set([...qa.keys(), ...qb.keys()])].sort()) {
    const x = qa.get(id)
    const y = qb.get(id)
    if (!isDeepStrictEqual(x, y)) out.push({ section: 'quotas', subject: id, change: `${x === undefined ? '(none)' : `${x.tokens}/${x.period} for ${x.location}`} → ${y === undefined ? '(none)' : `${y.tokens}/${y.period} for ${y.location}`}` })
  }

  // Scheduled changes still to come, by instant.
  const sa = new Map(a.schedule.filter((e) => Date.parse(e.effectiveFrom) > atMs).map((e) => [new Date(e.effectiveFrom).toISOString(), e]))
  const sb = new Map(b.schedule.filter((e) => Date.parse(e.effectiveFrom) > atMs).map((e) => [new Date(e.effectiveFrom).toISOString(), e]))
  for (const at of [...new Set([...sa.keys(), ...sb.keys()])].sort()) {
    const x = sa.get(at)
    const y = sb.get(at)
    if (x === undefined) out.push({ section: 'schedule', subject: at, change: `change scheduled${y?.note === undefined ? '' : `: ${y.note}`}` })
    else if (y === undefined) out.push({ section: 'schedule', subject: at, change: 'scheduled change removed' })
    else if (!isDeepStrictEqual(x, y)) out.push({ section: 'schedule', subject: at, change: 'scheduled change modified' })
  }
  return { from: policyHash(ea), to: policyHash(eb), lines: out }
}

export function formatPolicyDiff (d: PolicyDiff): string {
  if (d.lines.length === 0) return `${d.from} → ${d.to}: no change in what the policy decides\n`
  const out = [`${d.from} → ${d.to}: ${d.lines.length} change(s)`]
  let section = ''
  for (const l of d.lines) {
    if (l.section !== section) { section = l.section; out.push('', `${section}:`) }
    out.push(`  ${l.subject.padEnd(18)} ${l.change}`)
  }
  return out.join('\n') + '\n'
}
