import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../runtime.js'
import { BadGatewayError, ModelNotFoundError } from '../errors.js'

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'authorization', 'x-api-key'])

/**
 * Send the permitted request to the backend serving its model and stream the answer back.
 * TODO(issue 2): usage accounting, timeouts mapping, abort propagation, header hygiene in full.
 */
export async function forward (request: FastifyRequest, reply: FastifyReply, rt: Runtime): Promise<void> {
  const shape = request.ctx.shape
  const policy = rt.policy.snapshot()
  const model = shape?.model ?? null
  const modelCfg = model === null ? undefined : policy.models[model]
  if (shape === null || modelCfg === undefined) throw new ModelNotFoundError(model ?? '')
  const backend = rt.backends.get(modelCfg.backend)
  if (backend === undefined) throw new BadGatewayError(`no backend for ${model ?? ''}`)
  request.ctx.backend = { name: backend.name, region: backend.region }
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(request.headers)) {
    if (!HOP_BY_HOP.has(k) && typeof v === 'string') headers[k] = v
  }
  if (backend.apiKey !== undefined) headers.authorization = `Bearer ${backend.apiKey}`
  headers['x-request-id'] = request.id
  const body = request.body === undefined ? undefined : JSON.stringify(request.body)
  let res
  try {
    res = await backend.pool.request({ path: backend.basePath + shape.forwardPath, method: request.method as 'POST', headers, body })
  } catch (err) {
    throw new BadGatewayError((err as Error).message, { cause: err })
  }
  request.ctx.upstreamStatus = res.statusCode
  reply.code(res.statusCode)
  for (const [k, v] of Object.entries(res.headers)) {
    if (!HOP_BY_HOP.has(k) && v !== undefined) reply.header(k, v)
  }
  return reply.send(res.body)
}
