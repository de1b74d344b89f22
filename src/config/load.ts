import { readFile } from 'node:fs/promises'
import { resolve, isAbsolute } from 'node:path'
import { parseDocument, visit, isScalar, isPair } from 'yaml'
import { Ajv, type ErrorObject } from 'ajv'
import ajvFormats from 'ajv-formats'
import { ConfigSchema, type Config } from './schema/index.js'
import { cidrIssues } from '../net/address.js'
import { scheduleOrderIssues, scheduleStage } from './schedule.js'

export interface ConfigIssue { path: string, message: string }

export class ConfigError extends Error {
  readonly issues: ConfigIssue[]
  constructor (source: string, issues: ConfigIssue[]) {
    super(`${source}: ${issues.length} configuration error(s)\n` + issues.map((i) => `  ${i.path || '/'}: ${i.message}`).join('\n'))
    this.name = 'ConfigError'
    this.issues = issues
  }
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g
const WHOLE_ENV_REF = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/

/**
 * Replace ${VAR} and ${VAR:-default} in string values (never in keys, never in the raw text, so a secret
 * cannot inject YAML). A value that is exactly one unset ${VAR} is removed, so `url: ${REDIS_URL}` with
 * REDIS_URL unset means "absent" (the schema default applies); an unset variable inside a longer string is an error.
 */
export function interpolateEnv (value: unknown, env: NodeJS.ProcessEnv, path: string, issues: ConfigIssue[]): unknown {
  if (typeof value === 'string') {
    const whole = WHOLE_ENV_REF.exec(value)
    if (whole !== null) {
      const v = env[whole[1] as string]
      if (v !== undefined && v !== '') return v
      return whole[2] ?? undefined
    }
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name]
      if (v !== undefined && v !== '') return v
      if (fallback !== undefined) return fallback
      issues.push({ path, message: `environment variable ${name} is not set` })
      return ''
    })
  }
  if (Array.isArray(value)) {
    const out: unknown[] = []
    value.forEach((v, i) => {
      const r = interpolateEnv(v, env, `${path}/${i}`, issues)
      if (r !== undefined) out.push(r)
    })
    return out
  }
  if (value !== null && typeof value === 'object') {
    // fromEntries defines own properties: a `__proto__:` key stays a key (and is refused by the schema) instead
    // of replacing the prototype and vanishing
    const out: Array<[string, unknown]> = []
    for (const [k, v] of Object.entries(value)) {
      const r = interpolateEnv(v, env, `${path}/${k}`, issues)
      if (r !== undefined) out.push([k, r])
    }
    return Object.fromEntries(out)
  }
  return value
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false })
ajvFormats.default(ajv)
const validateSchema = ajv.compile<Config>(ConfigSchema)

function ajvIssue (e: ErrorObject): ConfigIssue {
  // A map key refused by its propertyNames schema (models, tiers, backends): name the key and why.
  const key = (e as ErrorObject & { propertyName?: string }).propertyName
  if (key !== undefined) {
    const why = e.keyword === 'not' ? 'is a reserved name' : e.keyword === 'pattern' ? `must match ${String(e.params.pattern)}` : 'is not a valid name'
    return { path: `${e.instancePath}/${key}`, message: `name "${key}" ${why}` }
  }
  let message = e.message ?? 'invalid'
  if (e.keyword === 'additionalProperties') message = `unknown property "${String(e.params.additionalProperty)}"`
  if (e.keyword === 'not' && e.instancePath.endsWith('/id')) message = 'is a reserved name'
  if (e.keyword === 'enum' || e.keyword === 'anyOf') message = `${message}${e.params.allowedValues !== undefined ? ': ' + JSON.stringify(e.params.allowedValues) : ''}`
  return { path: e.instancePath, message }
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
      for (const x of validateSchema.errors ?? []) { const j = ajvIssue(x); issues.push({ path: `${at}${j.path}`, message: j.message }) }
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
export function parseConfig (raw: unknown, source = 'config', envIssues: ConfigIssue[] = []): Readonly<Config> {
  const data = structuredClone(raw ?? {})
  const ok = validateSchema(data)
  const issues = [...envIssues]
  // propertyNames reports each bad key twice (the inner keyword, then "property name must be valid"): keep the first
  if (!ok) issues.push(...(validateSchema.errors ?? []).filter((e) => e.keyword !== 'propertyNames').map(ajvIssue))
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
  const raw = interpolateEnv(doc.toJS(), env, '', envIssues)
  return parseConfig(raw, source, envIssues)
}

/** Resolve a path from the config against the working directory the gateway started in, unless absolute. */
export function resolvePath (baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p)
}
