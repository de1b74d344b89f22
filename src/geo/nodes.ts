/**
 * The two record pointers of a search-tree node, for each record size the MaxMind DB format allows (spec,
 * "Search Tree Section"): 24 bits (6-byte nodes), 28 bits (7-byte nodes, the middle byte's nibbles holding each
 * pointer's top four bits) and 32 bits (8-byte nodes). The one reader under the lookups and the verifier.
 */
export interface NodeReader {
  left: (node: number) => number
  right: (node: number) => number
}

export function nodeReader (db: Buffer, recordSize: 24 | 28 | 32): NodeReader {
  if (recordSize === 24) {
    return {
      left: (n) => { const o = n * 6; return ((db[o] ?? 0) << 16) | ((db[o + 1] ?? 0) << 8) | (db[o + 2] ?? 0) },
      right: (n) => { const o = n * 6 + 3; return ((db[o] ?? 0) << 16) | ((db[o + 1] ?? 0) << 8) | (db[o + 2] ?? 0) }
    }
  }
  if (recordSize === 28) {
    return {
      left: (n) => { const o = n * 7; return (((db[o + 3] ?? 0) & 0xf0) << 20) + (((db[o] ?? 0) << 16) | ((db[o + 1] ?? 0) << 8) | (db[o + 2] ?? 0)) },
      right: (n) => { const o = n * 7; return (((db[o + 3] ?? 0) & 0x0f) << 24) + (((db[o + 4] ?? 0) << 16) | ((db[o + 5] ?? 0) << 8) | (db[o + 6] ?? 0)) }
    }
  }
  return { left: (n) => db.readUInt32BE(n * 8), right: (n) => db.readUInt32BE(n * 8 + 4) }
}
