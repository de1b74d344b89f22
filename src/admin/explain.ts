import type { FastifyInstance } from 'fastify'
import type { Runtime } from '../runtime.js'

/** GET /admin/explain?ip=&keyId=&model=&endpoint= (roles: admin, auditor). TODO(issue 3). */
export async function registerExplain (_admin: FastifyInstance, _rt: Runtime): Promise<void> {}
