import type { Decision } from '../core/types.js'
import type { PolicySnapshot } from './snapshot.js'
import { permittedModels } from './decide.js'
import { ModelNotFoundError } from '../core/errors.js'

export interface ModelObject { id: string, object: 'model', created: number, owned_by: string }
export interface ModelList { object: 'list', data: ModelObject[] }

function modelObject (id: string): ModelObject {
  // `created` is not something the configuration knows; 0 keeps the OpenAI shape without inventing a date.
  // `owned_by` names the gateway: the model's `origin` is a country, not an owner.
  return { id, object: 'model', created: 0, owned_by: 'geogate' }
}

/**
 * GET /v1/models and GET /v1/models/{id}, answered by the gateway from the configured models: only what this
 * caller may use from this place. A model they may not use is "not found", as OpenAI answers for models a key
 * cannot see, so the list never reveals what other places or plans get.
 */
export function answerModels (d: Decision | null, one: string | null, policy: PolicySnapshot): ModelList | ModelObject {
  const allowed = d === null ? [] : permittedModels(policy, d.locationTier, d.keyTier)
  if (one !== null) {
    if (!allowed.includes(one)) throw new ModelNotFoundError(one)
    return modelObject(one)
  }
  return { object: 'list', data: allowed.map((id) => modelObject(id)) }
}
