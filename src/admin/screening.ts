/*
 * Denied-party screening on the admin plane (README, "Screening"):
 *   POST /admin/screening/import     a list file (CSV or JSON); every existing key is re-screened
 *   GET  /admin/screening            the list in service: date, rows, entries, sources, age, stale
 *   GET  /admin/screening/check      ?org=&country=&domain=: what screening says about a party
 *   POST /admin/keys/:id/clear       {reason}: an admin clears a key in review (or suspended); who and why are audited
 * Key creation (POST /admin/keys, in policy.ts) screens the organisation first: screenForCreation below.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import type { KeyConfig, KeyStatus } from '../config/schema/index.js'
import { BadRequestError, NotFoundError, PartyRestrictedError, UnavailableError } from '../core/errors.js'
import { PolicyNotFound, PolicyStoreUnavailable } from '../policy/live.js'
import { ScreeningImportError, type Party, type ScreeningMatch, type ScreeningResult } from '../screening/types.js'

type Actor = { name: string, role: string }

function actorOf (request: FastifyRequest): Actor {
  return { name: request.admin?.name ?? 'unknown', role: request.admin?.role ?? 'unknown' }
}

function audit (rt: Runtime, actor: Actor, action: string, target: string, before: unknown, after: unknown): void {
  rt.audit.appendAdminChange({ ts: new Date().toISOString(), actor: actor.name, role: actor.role, action, target, before, after })
  rt.metrics.adminChanges.inc({ action })
}

function partyOf (k: Pick<KeyConfig, 'org' | 'country' | 'domain'>): Party {
  return { org: k.org, country: k.country, domain: k.domain }
}

/** The matches an admin has not already cleared this key of, and the verdict they make. */
function uncleared (rt: Runtime, res: ScreeningResult, cleared: readonly string[]): { verdict: ScreeningResult['verdict'], top: ScreeningMatch | null } {
  const hits = res.matches.filter((m) => !cleared.includes(m.entryId))
  const top = hits[0] ?? null
  if (top === null) return { verdict: 'clear', top }
  return { verdict: top.score >= rt.config.screening.blockScore ? 'block' : 'review', top }
}

function matchRecord (top: ScreeningMatch, verdict: 'block' | 'review', listVersion: number | null, cleared?: string[]): NonNullable<KeyConfig['screening']> {
  return {
    reason: `screening:${verdict}`, at: new Date().toISOString(), entryId: top.entryId, entryName: top.entryName,
    source: top.source, score: top.score, ...(listVersion === null ? {} : { listVersion }), ...(cleared === undefined || cleared.length === 0 ? {} : { cleared })
  }
}

/**
 * Screen an organisation asking for a key. A block refuses it (403 party_restricted naming the entry, recorded
 * in the audit chain); a review match creates the key in `review`; otherwise nothing to add.
 */
export function screenForCreation (rt: Runtime, request: FastifyRequest, body: Record<string, unknown>): Pick<KeyConfig, 'status' | 'screening'> {
  if (typeof body.org !== 'string') return {} // the key's own validation names the problem
  const party: Party = {
    org: body.org,
    country: typeof body.country === 'string' ? body.country : undefined,
    domain: typeof body.domain === 'string' ? body.domain : undefined
  }
  const res = rt.screening.screen(party)
  const { verdict, top } = uncleared(rt, res, [])
  if (top === null || verdict === 'clear') return {}
  if (verdict === 'block') {
    audit(rt, actorOf(request), 'key.refuse', typeof body.id === 'string' ? body.id : '-', null, { party, verdict, matches: res.matches, listVersion: res.listVersion })
    request.log.warn({ org: party.org, entry: top.entryId, score: top.score }, 'key refused: organisation on a restricted-party list')
    throw Object.assign(new PartyRestrictedError(`No key created: "${party.org}" matches "${top.entryName}" (${top.entryId}) on ${top.source}, score ${top.score}`), { matches: res.matches })
  }
  return { status: 'review', screening: matchRecord(top, 'review', res.listVersion) }
}

export interface RescreenOutcome {
  screened: number
  suspended: Array<{ id: string, org: string, match: ScreeningMatch }>
  review: Array<{ id: string, org: string, match: ScreeningMatch }>
  failed: Array<{ id: string, error: string }>
}

/** Every key against the list in service; a new hit suspends the key (or puts it in review) on every replica. */
export async function rescreenKeys (rt: Runtime, actor: Actor): Promise<RescreenOutcome> {
  const out: RescreenOutcome = { screened: 0, suspended: [], review: [], failed: [] }
  for (const k of rt.live.config().keys) {
    out.screened++
    const status: KeyStatus = k.status ?? 'active'
    if (status === 'suspended') continue
    const res = rt.screening.screen(partyOf(k))
    const { verdict, top } = uncleared(rt, res, k.screening?.cleared ?? [])
    if (top === null || verdict === 'clear' || (verdict === 'review' && status === 'review')) continue
    const next: KeyStatus = verdict === 'block' ? 'suspended' : 'review'
    try {
      const change = await rt.live.setKeyStatus(k.id, next, matchRecord(top, verdict, res.listVersion, k.screening?.cleared), next === 'suspended' ? ['active', 'review'] : ['active'])
      if (change === null) continue
      audit(rt, actor, next === 'suspended' ? 'key.suspend' : 'key.review', k.id, change.before, { ...change.after, match: top })
      ;(next === 'suspended' ? out.suspended : out.review).push({ id: k.id, org: k.org, match: top })
      rt.log.warn({ keyId: k.id, org: k.org, entry: top.entryId, source: top.source, score: top.score, status: next }, 'key re-screened against the new list')
    } catch (err) {
      out.failed.push({ id: k.id, error: err instanceof Error ? err.message : String(err) })
    }
  }
  return out
}

interface ImportQs { name?: string, date?: string, format?: string, force?: string }

export async function registerScreening (admin: FastifyInstance, rt: Runtime): Promise<void> {
  admin.get('/admin/screening', async () => ({ list: rt.screening.info(), shared: rt.screening.shared }))

  admin.get<{ Querystring: { org?: string, country?: string, domain?: string } }>('/admin/screening/check', async (request) => {
    const { org, country, domain } = request.query
    if (org === undefined || org.trim() === '') throw new BadRequestError('missing query parameter: org')
    return rt.screening.screen({ org, country: country?.toUpperCase(), domain })
  })

  // The file arrives as it was downloaded (CSV or JSON) and is parsed here, whole, before anything is stored.
  await admin.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: rt.config.screening.maxBytes }, (_req, body, done) => { done(null, body) })
    scope.post<{ Querystring: ImportQs, Body: unknown }>('/admin/screening/import', async (request) => {
      if (typeof request.body !== 'string' || request.body.length === 0) throw new BadRequestError('Send the list file as the request body')
      const q = request.query
      const actor = actorOf(request)
      let meta
      try {
        meta = await rt.screening.import(request.body, { fileName: q.name ?? '', date: q.date, format: q.format, force: q.force === 'true' || q.force === '1' })
      } catch (err) {
        if (err instanceof ScreeningImportError) {
          throw Object.assign(new BadRequestError(`List refused, the list in service is kept: ${err.message}`), {
            issues: err.issues.map((i) => ({ path: `line ${i.line}: ${i.field}`, message: i.message, line: i.line, field: i.field }))
          })
        }
        throw new UnavailableError(`The list could not be stored; the list in service is kept (${err instanceof Error ? err.message : String(err)})`, { cause: err })
      }
      audit(rt, actor, 'screening.import', 'screening', null, meta)
      const rescreen = await rescreenKeys(rt, { name: 'screening', role: 'system' })
      return { list: rt.screening.info() ?? meta, rescreen }
    })
  })

  admin.post<{ Params: { id: string }, Body: unknown }>('/admin/keys/:id/clear', async (request) => {
    const body = request.body
    const reason = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>).reason : undefined
    if (typeof reason !== 'string' || reason.trim() === '') throw new BadRequestError('Say why: {"reason": "…"} (it is recorded in the audit log)')
    const k = rt.live.config().keys.find((x) => x.id === request.params.id)
    if (k === undefined) throw new NotFoundError(`No key with id "${request.params.id}"`)
    const status = k.status ?? 'active'
    if (status === 'active') throw new BadRequestError(`Key "${k.id}" is active: nothing to clear`)
    const actor = actorOf(request)
    const cleared = [...new Set([...(k.screening?.cleared ?? []), ...(k.screening?.entryId === undefined ? [] : [k.screening.entryId])])]
    try {
      const change = await rt.live.setKeyStatus(k.id, 'active', {
        ...k.screening, reason: 'cleared', at: new Date().toISOString(), clearedBy: actor.name, clearedReason: reason.trim(), ...(cleared.length > 0 ? { cleared } : {})
      }, [status])
      if (change === null) throw new BadRequestError(`Key "${k.id}" changed meanwhile; look again`)
      audit(rt, actor, 'key.clear', k.id, change.before, { ...change.after, reason: reason.trim() })
      return change.after
    } catch (err) {
      if (err instanceof PolicyNotFound) throw new NotFoundError(err.message)
      if (err instanceof PolicyStoreUnavailable) throw new UnavailableError(err.message, { cause: err })
      throw err
    }
  })
}
