import type { FastifyInstance } from 'fastify'
import type { Runtime } from '../runtime.js'

/** GET /admin/audit, GET /admin/audit/verify, GET /admin/reports/usage (roles: admin, auditor). TODO(issue 5). */
export async function registerAudit (_admin: FastifyInstance, _rt: Runtime): Promise<void> {}
