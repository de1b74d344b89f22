import type { FastifyInstance } from 'fastify'
import type { Runtime } from '../runtime.js'

/** GET|PUT /admin/tiers/:name, GET|PUT /admin/locations, POST|GET /admin/keys, DELETE /admin/keys/:id. TODO(issue 6). */
export async function registerPolicyAdmin (_admin: FastifyInstance, _rt: Runtime): Promise<void> {}
