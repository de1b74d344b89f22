import { readFile } from 'node:fs/promises'
import { resolve, isAbsolute } from 'node:path'
import { parseDocument, visit, isScalar, isPair } from 'yaml'
import { Ajv, type ErrorObject } from 'ajv'
import ajvFormats from 'ajv-formats'
import { ConfigSchema, type Config } from './schema/index.js'
import { cidrIssues } from '../net/address.js'
import { scheduleOrderIssues, scheduleStage } from './schedule.js'

import { ConfigError, issueLine, type ConfigIssue } from '../core/errors.js'
export { ConfigError, issueLine, type ConfigIssue }

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** One `${...}` reference in a string value, or a syntax error found while scanning for it. */
type Piece = { text: string } | { name: string, fallback: string | undefined }

/** Split a string into literal text and ${NAME} / ${NAME:-default} references; `$${` is a literal `${`. */
function scan (value: string): Piece[] | string {
  const pieces: Piece[] = []
  let text = ''
  let i = 0
  while (i < value.length) {
    if (value.startsWith('$${', i)) { text += '${'; i += 3; continue }
    if (!value.startsWith('${', i)) { text += value[i] as string; i++; continue }
    const close = value.indexOf('}', i + 2)
    if (close < 0) return `unterminated reference "${value.slice(i)}": a \${ needs its closing } (write $\${ for a literal \${)`
    const body = value.slice(i + 2, close)
    const sep = body.indexOf(':-')
    const name = sep < 0 ? body : body.slice(0, sep)
    if (!VAR_NAME.test(name)) return `"\${${body}}" is not a reference to an environment variable: write \${NAME} or \${NAME:-default}`
    if (text !== '') pieces.push({ text })
    text = ''
    pieces.push({ name, fallback: sep < 0 ? undefined : body.slice(sep + 2) })
    i = close + 1
  }
  if (text !== '') pieces.push({ text })
  return pieces
}

/** What a value that was exactly one reference came from: coercion and validation messages name it. */
export type EnvSources = Map<string, string>

/**
 * Replace ${VAR} and ${VAR:-default} in string values (never in keys, never in the raw text, so a secret
 * cannot inject YAML). Strict, because a typo must not silently change what runs: a variable that is unset (or
 * empty) without a default is an error naming it and the path; `${VAR:-}` marks the value optional — unset, the
 * key is removed and the schema default applies (never an empty string); an unterminated reference is an error.
 * A value that is exactly one reference is recorded in `sources`, so it can be coerced to the schema's type.
 */
export function interpolateEnv (value: unknown, env: NodeJS.ProcessEnv, path: string, issues: ConfigIssue[], sources: EnvSources = new Map()): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value
    const pieces = scan(value)
    if (typeof pieces === 'string') { issues.push({ path, message: pieces, value }); return value }
    const only = pieces.length === 1 ? pieces[0] : undefined
    if (only !== undefined && 'name' in only) {
      const v = env[only.name]
      if (v !== undefined && v !== '') { sources.set(path, only.name); return v }
      if (only.fallback === '') return undefined
      if (only.fallback !== undefined) { sources.set(path, only.name); return only.fallback }
      issues.push({ path, message: `environment variable ${only.name} is not set (write \${${only.name}:-default} for a default, or \${${only.name}:-} to make it optional)`, envVar: only.name })
      // kept as written, so the schema does not add "missing required property" for what is already reported
      return value
    }
    let out = ''
    for (const p of pieces) {
      if ('text' in p) { out += p.text; continue }
      const v = env[p.name]
      if (v !== undefined && v !== '') out += v
      else if (p.fallback !== undefined) out += p.fallback
      else issues.push({ path, message: `environment variable ${p.name} is not set (in "${value}")`, envVar: p.name })
    }
    return out
  }
  if (Array.isArray(value)) {
    const out: unknown[] = []
    value.forEach((v, i) => {
      const r = interpolateEnv(v, env, `${path}/${i}`, issues, sources)
      if (r !== undefined) out.push(r)
    })
    return out
  }
  if (value !== null && typeof value === 'object') {
    // fromEntries defines own properties: a `__proto__:` key stays a key (and is refused by the schema) instead
    // of replacing the prototype and vanishing
    const out: Array<[string, unknown]> = []
    for (const [k, v] of Object.entries(value)) {
      const r = interpolateEnv(v, env, `${path}/${k}`, issues, sources)
      if (r !== undefined) out.push([k, r])
    }
    return Object.fromEntries(out)
  }
  return value
}

interface SchemaNode {
  type?: string | string[]
  const?: unknown
  enum?: unknown[]
  anyOf?: SchemaNode[]
  properties?: Record<string, SchemaNode>
  additionalProperties?: boolean | SchemaNode
  patternProperties?: Record<string, SchemaNode>
  items?: SchemaNode
}

/** The schema nodes that may describe the value at a JSON pointer (several under anyOf). */
function schemaAt (root: SchemaNode, path: string): SchemaNode[] {
  let nodes = [root]
  for (const seg of path.split('/').slice(1)) {
    const next: SchemaNode[] = []
    const expand = (n: SchemaNode): void => {
      if (n.anyOf !== undefined) { n.anyOf.forEach(expand); return }
      const child = n.properties?.[seg] ??
        (typeof n.additionalProperties === 'object' ? n.additionalProperties : undefined) ??
        Object.values(n.patternProperties ?? {})[0] ?? n.items
      if (child !== undefined) next.push(child)
    }
    nodes.forEach(expand)
    nodes = next
  }
  const flat: SchemaNode[] = []
  const flatten = (n: SchemaNode): void => { if (n.anyOf !== undefined) n.anyOf.forEach(flatten); else flat.push(n) }
  nodes.forEach(flatten)
  return flat
}

function typesOf (nodes: SchemaNode[]): Set<string> {
  const out = new Set<string>()
  for (const n of nodes) {
    if (n.const !== undefined) out.add(typeof n.const)
    for (const t of Array.isArray(n.type) ? n.type : n.type === undefined ? [] : [n.type]) out.add(t)
  }
  return out
}

/**
 * Environment variables are strings; ports, limits and switches are not. A value that was exactly one reference
 * is converted to the type the schema wants there, and a value that does not convert names its variable.
 */
export function coerceEnvValues (data: unknown, sources: EnvSources, issues: ConfigIssue[], schema: SchemaNode = ConfigSchema as SchemaNode): Set<string> {
  const failed = new Set<string>()
  for (const [path, name] of sources) {
    const types = typesOf(schemaAt(schema, path))
    if (types.size === 0 || types.has('string')) continue
    const segs = path.split('/').slice(1)
    const last = segs.pop()
    let parent: unknown = data
    for (const s of segs) parent = parent !== null && typeof parent === 'object' ? (parent as Record<string, unknown>)[s] : undefined
    if (last === undefined || parent === null || typeof parent !== 'object') continue
    const holder = parent as Record<string, unknown>
    const raw = holder[last]
    if (typeof raw !== 'string') continue
    const want = types.has('integer') ? 'integer' : types.has('number') ? 'number' : types.has('boolean') ? 'boolean' : null
    if (want === null) continue
    const t = raw.trim()
    let v: number | boolean | null = null
    if (want === 'integer' && /^[+-]?\d+$/.test(t)) v = Number(t)
    else if (want === 'number' && t !== '' && Number.isFinite(Number(t))) v = Number(t)
    else if (want === 'boolean' && (t === 'true' || t === 'false')) v = t === 'true'
    if (v === null) {
      const hint = want === 'boolean' ? 'true or false' : want === 'integer' ? 'an integer' : 'a number'
      issues.push({ path, message: `${JSON.stringify(raw)} from \${${name}} is not ${hint}`, value: raw, envVar: name })
      // the schema's own complaint about the same string would say less; this one names the variable
      holder[last] = want === 'boolean' ? false : 0
      failed.add(path)
      continue
    }
    holder[last] = v
  }
  return failed
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false, verbose: true })
ajvFormats.default(ajv)
const validateSchema = ajv.compile<Config>(ConfigSchema)

function valueAt (data: unknown, pointer: string): unknown {
  let v = data
  for (const seg of pointer.split('/').slice(1)) {
    const key = seg.replace(/~1/g, '/').replace(/~0/g, '~')
    v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined
  }
  return v
}

function shown (v: unknown): string {
  const s = JSON.stringify(v)
  if (s === undefined) return String(v)
  return s.length > 80 ? s.slice(0, 77) + '...' : s
}

/** The allowed constants of an anyOf made only of `const` branches (a TypeBox union of literals), else null. */
function constsOf (nodes: SchemaNode[]): string[] | null {
  const out: string[] = []
  for (const n of nodes) {
    if (n.const === undefined) return null
    out.push(String(n.const))
  }
  return out
}

/**
 * Ajv's errors as one issue per problem: the path, the value found and what is allowed. The per-branch
 * errors of an anyOf are folded into one line (for a union of literals: the list of allowed values).
 */
export function ajvIssues (errors: ErrorObject[], data: unknown, sources: EnvSources = new Map()): ConfigIssue[] {
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf')
  const inBranch = (e: ErrorObject): boolean => anyOfs.some((a) => a !== e && e.schemaPath.startsWith(a.schemaPath.replace(/\/anyOf$/, '/anyOf/')) && e.instancePath.startsWith(a.instancePath))
  const out: ConfigIssue[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    // propertyNames reports each bad key twice (the inner keyword, then "property name must be valid"): keep the first
    if (inBranch(e) || e.keyword === 'propertyNames') continue
    // A map key refused by its propertyNames schema (models, tiers, backends): name the key and why.
    const key = (e as ErrorObject & { propertyName?: string }).propertyName
    if (key !== undefined) {
      const why = e.keyword === 'not' ? 'is a reserved name' : e.keyword === 'pattern' ? `must match ${String(e.params.pattern)}` : 'is not a valid name'
      const named = { path: `${e.instancePath}/${key}`, message: `name "${key}" ${why}` }
      if (!seen.has(issueLine(named))) { seen.add(issueLine(named)); out.push(named) }
      continue
    }
    const path = e.instancePath
    const value = valueAt(data, path)
    const from = sources.get(path)
    const origin = from === undefined ? '' : ` (from \${${from}})`
    let issue: ConfigIssue
    if (e.keyword === 'additionalProperties') {
      const prop = String(e.params.additionalProperty)
      const props = Object.keys((e.parentSchema as SchemaNode | undefined)?.properties ?? {})
      issue = { path: `${path}/${prop}`, message: `unknown property "${prop}"${props.length > 0 ? `; allowed: ${props.join(', ')}` : ''}`, allowed: props }
    } else if (e.keyword === 'required') {
      issue = { path, message: `missing required property "${String(e.params.missingProperty)}"` }
    } else if (e.keyword === 'anyOf') {
      const consts = constsOf((e.schema as SchemaNode[] | undefined) ?? [])
      issue = consts !== null
        ? { path, message: `${shown(value)}${origin} is not allowed; allowed: ${consts.join(', ')}`, value, allowed: consts }
        : { path, message: `${shown(value)}${origin} matches none of the accepted forms (${typeNames((e.schema as SchemaNode[] | undefined) ?? [])})`, value }
    } else if (e.keyword === 'enum') {
      const allowed = (e.params.allowedValues as unknown[]).map(String)
      issue = { path, message: `${shown(value)}${origin} is not allowed; allowed: ${allowed.join(', ')}`, value, allowed }
    } else if (e.keyword === 'not' && path.endsWith('/id')) {
      issue = { path, message: `${shown(value)} is a reserved name`, value }
    } else {
      issue = { path, message: `${shown(value)}${origin} ${e.message ?? 'is invalid'}`, value }
    }
    if (from !== undefined) issue.envVar = from
    const k = issueLine(issue)
    if (!seen.has(k)) { seen.add(k); out.push(issue) }
  }
  return out
}

function typeNames (nodes: SchemaNode[]): string {
  return [...new Set(nodes.map((n) => n.const !== undefined ? JSON.stringify(n.const) : Array.isArray(n.type) ? n.type.join('|') : n.type ?? 'value'))].join(', ')
}

/** Cross-references the schema cannot express. */
/** Places below the subdivision (policy/precise.ts): city:<GeoNames id>, postal:<CC>:<code>, region:<geo.regions name>. */
function preciseIssue (p: string, c: Config): string | null {
  if (p.startsWith('city:')) return /^city:[1-9][0-9]{0,11}$/.test(p) ? null : `"${p}": a city is city:<GeoNames id>`
  if (p.startsWith('postal:')) return /^postal:[A-Z]{2}:[A-Z0-9 *?-]{1,12}$/.test(p) ? null : `"${p}": a postal code is postal:<CC>:<code> (upper case; * and ? for ranges)`
  if (p.startsWith('region:')) return c.geo.regions?.[p.slice(7)] !== undefined && Object.hasOwn(c.geo.regions, p.slice(7)) ? null : `"${p}": no region "${p.slice(7)}" in geo.regions`
  return `"${p}" is not an ISO 3166-1 alpha-2 country or ISO 3166-2 subdivision code (nor a region:, postal: or city: place)`
}

export function checkReferences (c: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const tierNames = new Set(Object.keys(c.tiers))
  const needTier = (path: string, name: string | undefined): void => {
    if (name !== undefined && !tierNames.has(name)) issues.push({ path, message: `unknown tier "${name}"` })
  }
  for (const [name, m] of Object.entries(c.models)) {
    for (const b of [m.backend, ...(m.backends ?? [])]) {
      if (!Object.hasOwn(c.backends, b)) issues.push({ path: `/models/${name}/backend`, message: `unknown backend "${b}"` })
    }
  }
  needTier('/locations/default', c.locations.default)
  needTier('/locations/unknown', c.locations.unknown)
  needTier('/locations/anonymizers', c.locations.anonymizers)
  needTier('/locations/internal', c.locations.internal)
  for (const i of cidrIssues(c.server.trustedProxies)) issues.push({ path: `/server/trustedProxies/${i.index}`, message: `"${i.value}": ${i.message}` })
  for (const i of cidrIssues(c.server.internalNetworks)) issues.push({ path: `/server/internalNetworks/${i.index}`, message: `"${i.value}": ${i.message}` })
  const seen = new Map<string, string>()
  for (const [tier, places] of Object.entries(c.locations.tiers)) {
    needTier(`/locations/tiers/${tier}`, tier)
    places.forEach((p, i) => {
      if (!/^[A-Z]{2}(-[A-Z0-9]{1,3})?$/.test(p)) {
        const issue = preciseIssue(p, c)
        if (issue !== null) issues.push({ path: `/locations/tiers/${tier}/${i}`, message: issue })
      }
      const other = seen.get(p)
      if (other !== undefined && other !== tier) issues.push({ path: `/locations/tiers/${tier}/${i}`, message: `"${p}" is already mapped to tier "${other}"` })
      seen.set(p, tier)
    })
  }
  const keyIds = new Set<string>()
  c.keys.forEach((k, i) => {
    needTier(`/keys/${i}/tier`, k.tier)
    if (keyIds.has(k.id)) issues.push({ path: `/keys/${i}/id`, message: `duplicate key id "${k.id}"` })
    keyIds.add(k.id)
  })
  return issues
}

/**
 * A schedule is checked stage by stage: the policy as it will be once each entry applies must be as valid as the
 * file itself (known tiers, no place in two tiers, …), so a change due next year cannot fail on the day.
 */
function scheduleIssues (c: Config): ConfigIssue[] {
  const issues = scheduleOrderIssues(c)
  if (issues.length > 0) return issues
  c.schedule.forEach((e, i) => {
    const stage = structuredClone(scheduleStage(c, i))
    const at = `/schedule/${i} (from ${e.effectiveFrom})`
    if (!validateSchema(stage)) {
      for (const j of ajvIssues(validateSchema.errors ?? [], stage)) issues.push({ ...j, path: `${at}${j.path}` })
      return
    }
    for (const x of checkReferences(stage)) issues.push({ path: `${at}${x.path}`, message: x.message })
  })
  return issues
}

export function deepFreeze<T> (o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

/** Validate a plain object (already parsed and interpolated). Throws ConfigError with every issue. */
export function parseConfig (raw: unknown, source = 'config', envIssues: ConfigIssue[] = [], sources: EnvSources = new Map()): Readonly<Config> {
  const data = structuredClone(raw ?? {})
  const issues = [...envIssues]
  const failed = coerceEnvValues(data, sources, issues)
  for (const i of envIssues) failed.add(i.path)
  const ok = validateSchema(data)
  if (!ok) issues.push(...ajvIssues(validateSchema.errors ?? [], data, sources).filter((i) => !failed.has(i.path)))
  if (issues.length === 0) issues.push(...checkReferences(data as Config))
  if (issues.length === 0) issues.push(...scheduleIssues(data as Config))
  if (issues.length > 0) throw new ConfigError(source, issues)
  return deepFreeze(data as Config)
}

export interface LoadedConfig { config: Readonly<Config>, file: string, baseDir: string }

// Values that are codes, not numbers: YAML 1.2 reads the ECCN 4E091 as 4×10^91, the ISO code NO as false, and a
// key id 0042 or an all-digit hash as numbers (losing digits); such values are kept exactly as written.
const AS_WRITTEN = new Set(['classification', 'region', 'origin', 'country', 'sha256', 'id', 'org', 'apiKey'])

function keepAsWritten (doc: ReturnType<typeof parseDocument>): void {
  visit(doc, {
    Pair (_key, pair) {
      if (isPair(pair) && isScalar(pair.key) && AS_WRITTEN.has(String(pair.key.value)) && isScalar(pair.value) &&
        typeof pair.value.value !== 'string' && typeof pair.value.source === 'string') {
        pair.value.value = pair.value.source
      }
    }
  })
}

/** YAML -> env interpolation -> validate -> freeze. Relative paths in the file are resolved against the working directory. */
export async function loadConfig (file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  const abs = resolve(file)
  const text = await readFile(abs, 'utf8')
  return { config: configFromText(text, abs, env), file: abs, baseDir: process.cwd() }
}

/** A configuration given as YAML (or JSON) text, e.g. a candidate policy sent to the admin API. */
export function configFromText (text: string, source: string, env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    throw new ConfigError(source, doc.errors.map((e) => ({ path: `line ${e.linePos?.[0]?.line ?? '?'}`, message: e.message.split('\n')[0] ?? e.message })))
  }
  keepAsWritten(doc)
  const envIssues: ConfigIssue[] = []
  const sources: EnvSources = new Map()
  const raw = interpolateEnv(doc.toJS(), env, '', envIssues, sources)
  return parseConfig(raw, source, envIssues, sources)
}

/** Resolve a path from the config against the working directory the gateway started in, unless absolute. */
export function resolvePath (baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p)
}
