/**
 * Dependencies that only some features use (DuckDB for audit SQL and reports, pg and the AWS SDK for witnesses) are
 * imported at first use, not at boot: a gateway that never runs a report or anchors to a witness never maps them
 * (tens of MB of RSS each). Node caches a module once imported, so later calls cost one resolved promise.
 */

import { OptionalModuleError } from './errors.js'

/** `await import(…)` of a feature's dependency; a failure says which feature needs which package, and why it failed. */
export async function loadOptional<T> (pkg: string, feature: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load()
  } catch (err) {
    throw new OptionalModuleError(pkg, feature, err)
  }
}
