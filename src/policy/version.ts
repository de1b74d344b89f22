import { createHash } from 'node:crypto'
import type { Config, KeyConfig } from '../config/schema/index.js'
import type { AdminChange } from '../audit/types.js'

/**
 * The effective policy in canonical form: everything a decision reads (mode, locations, tiers, models and where
 * their backends serve, quotas, keys with their hashes, organisations and tiers), as JSON with object keys sorted and
 * keys ordered by id, so the same policy gives the same text on every replica, whatever the order of the file.
 * Backend URLs and credentials are left out: they route, they do not decide. A key appears with the 8-hex-digit
 * fingerprint of its hash, never the hash itself: this text is written into the audit log (`policy.version`), and
 * a full SHA-256 there would let anyone holding the log test guesses of a weak key offline.
 */
export function canonicalPolicy (c: Readonly<Config>, keys: readonly KeyConfig[] = c.keys): string {
  const regions: Record<string, string> = {}
  for (const [name, b] of Object.entries(c.backends)) regions[name] = b.region
  return canonicalJson({
    mode: c.policy.mode,
    blockedByUrl: c.policy.blockedByUrl,
    locations: c.locations,
    tiers: c.tiers,
    models: c.models,
    backendRegions: regions,
    quotas: c.quotas,
    keys: [...keys].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0).map(({ sha256, ...k }) => ({ ...k, fingerprint: sha256.slice(0, 8) }))
  })
}

/** `p-` and the first 16 hex digits of the SHA-256 of the canonical policy. */
export function policyHash (c: Readonly<Config>, keys: readonly KeyConfig[] = c.keys): string {
  return 'p-' + createHash('sha256').update(canonicalPolicy(c, keys)).digest('hex').slice(0, 16)
}

/** JSON with object keys sorted at every depth (arrays keep their order: in a policy, order can mean something). */
export function canonicalJson (v: unknown): string {
  return JSON.stringify(sortKeys(v))
}

function sortKeys (v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v === null || typeof v !== 'object') return v
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(v).sort()) {
    const x = (v as Record<string, unknown>)[k]
    if (x !== undefined) out[k] = sortKeys(x)
  }
  return out
}

/** The `action` of the admin record that carries a policy version in full. */
export const POLICY_VERSION_ACTION = 'policy.version'

/**
 * The audit-chain record of a new effective policy: its hash as `target`, its canonical text in `after.policy`
 * (sha256 of that text gives the hash back), so an auditor holding only the log can re-decide any interaction
 * whose `policyVersion` names it.
 */
export function policyVersionChange (c: Readonly<Config>, hash: string, cause: string, previous: string | null, ts: string): AdminChange {
  return {
    ts,
    actor: 'geogate',
    role: 'system',
    action: POLICY_VERSION_ACTION,
    target: hash,
    before: previous === null ? null : { policyVersion: previous },
    after: { policyVersion: hash, cause, policy: canonicalPolicy(c) }
  }
}
