/*
 * What each rule id in an audit record means, in words: the legend of reports. The ids are stable (README,
 * "Answers and rule ids"); the parts in <> are the tier, capability, limit or quota they name.
 */

const EXACT = new Map<string, string>([
  ['allow', 'allowed as asked'],
  ['none', 'no policy decision was reached'],
  ['model:unknown', 'the model is not configured'],
  ['location:unknown', 'the caller\'s location could not be determined, and the unknown tier refuses'],
  ['location:internal', 'the caller is on an internal address (loopback, private, link-local, server.internalNetworks), and the internal tier refuses'],
  ['limit:store-unavailable', 'the shared limit store (Redis) was unavailable and the tier fails closed'],
  ['limit', 'a limit refused it']
])

const PATTERNS: ReadonlyArray<[RegExp, (m: RegExpExecArray) => string]> = [
  [/^anonymizer:(.+)$/, (m) => `the caller uses an anonymizer (${m[1] ?? ''}) and is not a verified entity`],
  [/^location:(.+)$/, (m) => `the caller's location maps to tier ${m[1] ?? ''}, which refuses everything`],
  [/^key-tier:(.+):deny$/, (m) => `the key's tier ${m[1] ?? ''} refuses everything`],
  [/^key-tier:(.+):undefined$/, (m) => `the key's tier ${m[1] ?? ''} does not exist`],
  [/^((?:key-)?tier):(.+):model$/, (m) => `the ${who(m[1])} ${m[2] ?? ''} does not list the model`],
  [/^((?:key-)?tier):(.+):classification$/, (m) => `the model's export classification is not allowed in the ${who(m[1])} ${m[2] ?? ''}`],
  [/^((?:key-)?tier):(.+):capability:(.+)$/, (m) => `the capability ${m[3] ?? ''} is not permitted in the ${who(m[1])} ${m[2] ?? ''}`],
  [/^((?:key-)?tier):(.+):max-context-tokens$/, (m) => `the prompt is larger than the ${who(m[1])} ${m[2] ?? ''} allows (maxContextTokens)`],
  [/^((?:key-)?tier):(.+):max-output-tokens:clamp$/, (m) => `allowed, with max_tokens lowered to the ${who(m[1])} ${m[2] ?? ''} maxOutputTokens`],
  [/^((?:key-)?tier):(.+):max-output-tokens$/, (m) => `max_tokens is above the ${who(m[1])} ${m[2] ?? ''} maxOutputTokens`],
  [/^limit:(.+):requests$/, (m) => `tier ${m[1] ?? ''}: limits.requestsPerMinute reached (429)`],
  [/^limit:(.+):tokens$/, (m) => `tier ${m[1] ?? ''}: limits.tokensPerMinute reached (429)`],
  [/^limit:(.+):concurrency$/, (m) => `tier ${m[1] ?? ''}: limits.concurrency reached (429)`],
  [/^quota:(.+)$/, (m) => `the location quota ${m[1] ?? ''} (quotas[].tokens per period) is used up (429)`]
]

function who (prefix: string | undefined): string { return prefix === 'key-tier' ? 'key\'s tier' : 'location tier' }

/** The meaning of a rule id; an id this version does not know is said to be so, never guessed. */
export function describeRule (rule: string): string {
  const exact = EXACT.get(rule)
  if (exact !== undefined) return exact
  for (const [re, say] of PATTERNS) {
    const m = re.exec(rule)
    if (m !== null) return say(m)
  }
  return 'a rule id this version of geogate does not describe'
}
