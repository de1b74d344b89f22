import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import { authFailureGuard, authFailureOptions } from '../limits/auth-failures.js'
import type { AdminConfig, AdminRole } from '../config/schema/index.js'
import { bearerToken, sha256hex } from '../core/hash.js'
import { ForbiddenError, UnauthorizedError } from '../core/errors.js'

export interface AdminPrincipal { role: AdminRole, name: string }

/** Bearer token -> role. Tokens are held as SHA-256 hashes and compared in constant time. */
export function adminPrincipal (request: FastifyRequest, admin: Readonly<AdminConfig>): AdminPrincipal {
  const token = bearerToken(request.headers.authorization)
  if (token === null) throw new UnauthorizedError('Missing admin bearer token')
  const digest = Buffer.from(sha256hex(token), 'hex')
  let found: AdminPrincipal | null = null
  for (const t of admin.tokens) {
    if (timingSafeEqual(digest, Buffer.from(t.sha256, 'hex')) && found === null) found = { role: t.role, name: t.name ?? t.role }
  }
  if (found === null) throw new UnauthorizedError('Unknown admin token')
  return found
}

/** preHandler factory: the route needs one of these roles. */
export function requireRole (admin: () => Readonly<AdminConfig>, ...roles: AdminRole[]) {
  return async (request: FastifyRequest): Promise<void> => {
    const p = adminPrincipal(request, admin())
    if (!roles.includes(p.role)) throw new ForbiddenError(`This route needs the ${roles.join(' or ')} role`)
    request.admin = p
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    admin: AdminPrincipal | null
  }
}

const OPEN_ADMIN_PATHS = new Set(['/healthz', '/readyz'])

/** The admin plane: every request without a valid admin token (health probes aside) counts as a failure. */
export async function registerAdminAuthGuard (admin: FastifyInstance, rt: Runtime): Promise<void> {
  const guard = await authFailureGuard(admin, authFailureOptions(rt), 'admin')
  admin.addHook('onRequest', async (request, reply) => {
    if (OPEN_ADMIN_PATHS.has(request.url.split('?')[0] ?? '')) return
    try {
      adminPrincipal(request, rt.config.admin)
    } catch {
      await guard(request, reply)
    }
  })
}
