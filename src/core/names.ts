/*
 * Names that come from a configuration file, an admin call or a request (models, tiers, backends, key ids) are
 * looked up in Maps, and are also checked by pattern wherever they enter: a plain object used as a map answers for
 * `toString`, `constructor` and `__proto__` (the prototype-pollution family, e.g. CVE-2019-10744 in lodash), so
 * those names are refused outright rather than trusted to every lookup being written right.
 */

/**
 * Every name Object.prototype (and a constructor) answers for, written out so the generated JSON schema is the same
 * on every Node version (test/security/prototype-names.test.ts checks that it covers Object.prototype).
 */
export const RESERVED_NAMES: readonly string[] = [
  '__proto__', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__',
  'constructor', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', 'toString', 'valueOf',
  'prototype'
]

const RESERVED: ReadonlySet<string> = new Set(RESERVED_NAMES)

/** Tiers, backends, key ids created on the admin plane: as the admin API has always accepted, led by a letter or digit. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
/** Model names also take `/` and `:` (`meta-llama/Llama-3.1-8B-Instruct`, `ft:base:org::id`). */
export const MODEL_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$'

const NAME = new RegExp(NAME_PATTERN)
const MODEL_NAME = new RegExp(MODEL_NAME_PATTERN)

export function isReservedName (name: string): boolean {
  return RESERVED.has(name)
}

/** Why a tier/backend/key name is refused, or null when it is fine. */
export function nameProblem (name: string, pattern: 'name' | 'model' = 'name'): string | null {
  if (isReservedName(name)) return `"${name}" is a reserved name`
  const re = pattern === 'model' ? MODEL_NAME : NAME
  if (!re.test(name)) return `"${name}" must match ${pattern === 'model' ? MODEL_NAME_PATTERN : NAME_PATTERN}`
  return null
}

/** JSON-schema `propertyNames` for a map keyed by such names (config load and the generated schema). */
export function namesSchema (pattern: 'name' | 'model' = 'name'): Record<string, unknown> {
  return { type: 'string', pattern: pattern === 'model' ? MODEL_NAME_PATTERN : NAME_PATTERN, not: { enum: [...RESERVED_NAMES] } }
}
