import { writeFile } from 'node:fs/promises'
import { parse } from './args.js'
import { ConfigSchema } from '../config/schema/index.js'

/** A property with a default is not required of the writer of a file, whatever the TypeScript type says. */
function relaxDefaults (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(relaxDefaults)
  if (node === null || typeof node !== 'object') return node
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(node)) out[k] = relaxDefaults(v)
  const props = out.properties as Record<string, { default?: unknown }> | undefined
  if (Array.isArray(out.required) && props !== undefined) {
    const req = (out.required as string[]).filter((r) => props[r]?.default === undefined)
    if (req.length > 0) out.required = req
    else delete out.required
  }
  return out
}

export function schemaText (): string {
  return JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...(relaxDefaults(ConfigSchema) as object) }, null, 2) + '\n'
}

export const USAGE = `usage: geogate schema [--write FILE]
  print (or write to FILE) the configuration's JSON Schema, generated from src/config/schema
`

/** `geogate schema [--write FILE]`: the JSON Schema generated from the TypeBox definitions. */
export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, { write: { type: 'string' } })
  if (values.write !== undefined) await writeFile(values.write, schemaText())
  else process.stdout.write(schemaText())
  return 0
}
