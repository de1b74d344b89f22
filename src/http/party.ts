/*
 * A key's declared country is policy (tiers' countryMismatch): alert counts and logs the call, review puts the
 * key in review on every replica (recorded in the audit chain), deny refuses it. decide() says which; this
 * carries out what is not a plain answer.
 */
import type { FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { Decision, Principal } from '../core/types.js'

export function onCountryMismatch (request: FastifyRequest, rt: Runtime, principal: Principal, d: Decision): void {
  const m = d.countryMismatch
  if (m === undefined) return
  rt.metrics.countryMismatch.inc({ action: m.action })
  request.log.warn({ keyId: principal.keyId, declared: m.declared, actual: m.actual, action: m.action }, "call from a country other than the key's declared one")
  if (m.action !== 'review') return
  const at = new Date().toISOString()
  rt.live.setKeyStatus(principal.keyId, 'review', { reason: 'country-mismatch', at, detail: `declared ${m.declared}, called from ${m.actual}` }, ['active'])
    .then((change) => {
      if (change === null) return
      rt.audit.appendAdminChange({ ts: at, actor: 'policy', role: 'system', action: 'key.review', target: principal.keyId, before: change.before, after: { ...change.after, requestId: request.id } })
      rt.metrics.adminChanges.inc({ action: 'key.review' })
    }, (err: unknown) => { request.log.error({ err, keyId: principal.keyId }, 'could not put the key in review') })
}
