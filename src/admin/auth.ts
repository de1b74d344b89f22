import { timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { AdminConfig, AdminRole } from '../config/schema/index.js'
import { sha256hex } from '../pipeline/identity.js'
import { ForbiddenError, UnauthorizedError } from '../errors.js'

export interface AdminPrincipal { role: AdminRole, name: string }

/** Bearer token -> role. Tokens are held as SHA-256 hashes and compared in constant time. */
export function adminPrincipal (request: FastifyRequest, admin: Readonly<AdminConfig>): AdminPrincipal {
  const h = request.headers.authorization
  if (typeof h !== 'string' || h.slice(0, 7).toLowerCase() !== 'bearer ') throw new UnauthorizedError('Missing admin bearer token')
  const digest = Buffer.from(sha256hex(h.slice(7).trim()), 'hex')
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
