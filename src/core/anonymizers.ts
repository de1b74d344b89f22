/*
 * The anonymizer traits, in one table. Each has several spellings that users already rely on, kept exactly:
 *   config  locations.anonymizerKinds values and rule ids (`anonymizer:public-proxy`)
 *   flag    the GeoResult flag and the audit record's `anonymizer` values (`publicProxy`)
 *   metric  the `kind` label of geogate_anonymizer_requests_total (`public_proxy`)
 *   mmdb    the GeoIP2 Anonymous-IP / Enterprise field (`is_public_proxy`)
 * The table's order is the audit record's order; `precedence` is the order in which the policy names the rule
 * when an address has several traits.
 */
export const ANONYMIZER_TRAITS = [
  { flag: 'vpn', config: 'vpn', metric: 'vpn', mmdb: 'is_anonymous_vpn', precedence: 2, defaultKind: true },
  { flag: 'tor', config: 'tor', metric: 'tor', mmdb: 'is_tor_exit_node', precedence: 1, defaultKind: true },
  { flag: 'hosting', config: 'hosting', metric: 'hosting', mmdb: 'is_hosting_provider', precedence: 5, defaultKind: false },
  { flag: 'publicProxy', config: 'public-proxy', metric: 'public_proxy', mmdb: 'is_public_proxy', precedence: 3, defaultKind: true },
  { flag: 'residentialProxy', config: 'residential-proxy', metric: 'residential_proxy', mmdb: 'is_residential_proxy', precedence: 4, defaultKind: true }
] as const

export type AnonymizerTrait = typeof ANONYMIZER_TRAITS[number]
/** `vpn`, `tor`, `hosting`, `publicProxy`, `residentialProxy` */
export type AnonymizerFlag = AnonymizerTrait['flag']
/** `vpn`, `tor`, `hosting`, `public-proxy`, `residential-proxy` */
export type AnonymizerKind = AnonymizerTrait['config']

/** What the geo stage knows about an address: one boolean per trait, and `any`. */
export type AnonymizerFlags = Record<AnonymizerFlag, boolean> & {
  /** any of the traits, or the database's own is_anonymous */
  any: boolean
}

/** locations.anonymizerKinds when not configured: every trait but hosting (API callers run in clouds). */
export const DEFAULT_ANONYMIZER_KINDS: readonly AnonymizerKind[] = ANONYMIZER_TRAITS.filter((t) => t.defaultKind).map((t) => t.config)

/** Every config spelling (the schema's enum): the default ones first. */
export const ANONYMIZER_KINDS: readonly AnonymizerKind[] = [...DEFAULT_ANONYMIZER_KINDS, ...ANONYMIZER_TRAITS.filter((t) => !t.defaultKind).map((t) => t.config)]

/** The traits in the order the policy checks them (Tor before VPN before proxies before hosting). */
export const ANONYMIZER_PRECEDENCE: readonly AnonymizerTrait[] = [...ANONYMIZER_TRAITS].sort((a, b) => a.precedence - b.precedence)

export function noAnonymizer (): AnonymizerFlags {
  return { vpn: false, tor: false, hosting: false, publicProxy: false, residentialProxy: false, any: false }
}

/** The audit record's list: the flags that are set, in table order. */
export function anonymizerFlagList (a: Readonly<AnonymizerFlags> | undefined): AnonymizerFlag[] {
  if (a === undefined || !a.any) return []
  return ANONYMIZER_TRAITS.filter((t) => a[t.flag]).map((t) => t.flag)
}
