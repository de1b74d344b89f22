import { Redis } from 'ioredis'
import type { AdminRecord } from '../../src/audit/types.js'
import type { Runtime } from '../../src/runtime.js'
import { readRecords } from '../../src/audit/read.js'
import { deletePrefix as deleteUnder } from './redis.js'

export { uniquePrefix, testRedis, waitFor } from './redis.js'

/** Delete every key under a prefix (test clean-up), given the Redis URL. */
export async function deletePrefix (url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 })
  try {
    await deleteUnder(r, prefix)
  } finally {
    r.disconnect()
  }
}

/**
 * The admin-change records the gateway's (real) audit log holds, once what is queued is on disk: the changes people
 * made, without the `policy.version` records the gateway writes itself (see policyVersions).
 */
export async function adminChanges (rt: Runtime): Promise<AdminRecord[]> {
  return (await adminRecords(rt)).filter((r) => r.action !== 'policy.version')
}

/** The `policy.version` records (each effective policy, in full) in the gateway's audit log. */
export async function policyVersions (rt: Runtime): Promise<AdminRecord[]> {
  return (await adminRecords(rt)).filter((r) => r.action === 'policy.version')
}

async function adminRecords (rt: Runtime): Promise<AdminRecord[]> {
  await rt.audit.flush()
  const out: AdminRecord[] = []
  for await (const { record } of readRecords(rt.audit.dir, { kind: 'admin' })) if (record.kind === 'admin') out.push(record)
  return out
}
