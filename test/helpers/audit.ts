import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { AuditWriter, type WriterOptions } from '../../src/audit/writer.js'
import { loadSigner } from '../../src/audit/chain.js'
import type { AuditEntry } from '../../src/audit/types.js'

export function signingKeyPem (): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
}

/** An interaction entry with plausible values; `i` varies it. */
export function entry (i: number, patch: Partial<AuditEntry> = {}): AuditEntry {
  const countries = ['DE', 'FR', 'CU', 'BR', null]
  const models = ['llama-3.1-8b', 'frontier-1']
  const deny = i % 7 === 3
  return {
    ts: new Date(Date.UTC(2026, 10, 1) + i * 1000).toISOString(),
    requestId: `req-${i}`,
    keyId: `key-${i % 3}`,
    org: 'Org',
    ip: `203.0.113.${i % 250}`,
    country: countries[i % countries.length] ?? null,
    subdivision: null,
    anonymizer: [],
    geodbBuild: '2026-10-01T00:00:00.000Z',
    model: models[i % 2] ?? null,
    classification: 'EAR99',
    servingRegion: 'US',
    endpoint: 'chat.completions',
    crossBorder: true,
    decision: deny ? 'deny' : 'allow',
    rule: deny ? 'location:embargoed' : 'tier:tier1',
    status: deny ? 451 : 200,
    tokensIn: deny ? null : 10 + i % 5,
    tokensOut: deny ? null : 20 + i % 3,
    latencyMs: 12.5,
    locationTier: deny ? 'embargoed' : 'tier2',
    keyTier: 'tier1',
    degraded: false,
    shadow: false,
    outcome: deny ? 'refused' : 'ok',
    upstreamStatus: deny ? null : 200,
    stream: false,
    tokensEstimated: false,
    ...patch
  }
}

export async function tempDir (): Promise<{ dir: string, cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'geogate-audit-'))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}

export async function openWriter (dir: string, patch: Partial<WriterOptions> = {}, pem: string | null = null): Promise<AuditWriter> {
  return await AuditWriter.open({
    dir,
    writer: 'w1',
    fsyncIntervalMs: 5,
    flushBytes: 1 << 20,
    rotateBytes: 1 << 20,
    digestIntervalMs: 0,
    signer: pem === null ? null : loadSigner(pem),
    log: pino({ level: 'silent' }),
    ...patch
  })
}
