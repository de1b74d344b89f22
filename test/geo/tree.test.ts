/** The search-tree walk that keys the answer cache agrees with mmdb-lib's, and the address parsers are strict. */
import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import { join } from 'node:path'
import { Reader, type Response } from 'maxmind'
import { TreeWalker } from '../../src/geo/tree.js'
import { parseIPv4, parseIPv6 as parseGroups, ipv6Bytes } from '../../src/net/address.js'
import { verifyMmdb } from '../../src/geo/verify.js'
import { nodeReader } from '../../src/geo/nodes.js'
import { lookupAddress } from '../../src/geo/address.js'
import { embeddedDatabasePath } from '../../src/geo/service.js'
import { buildMmdb } from '../helpers/mmdb-writer.js'
import { requireOfficialFixtures } from '../helpers/official-geodb.js'

/** The 16 bytes of a valid IPv6 address, as the tree walk reads them. */
function parseIPv6 (s: string): Uint8Array { return ipv6Bytes(parseGroups(s) ?? []) }

t.test('parseIPv4 accepts exactly what net.isIPv4 accepts', async (t) => {
  const cases = ['1.2.3.4', '0.0.0.0', '255.255.255.255', '256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1..2.3', '', 'a.b.c.d', '1.2.3.4 ', ' 1.2.3.4', '10.0.0.01', '1.2.3.-4', '0.0.0.00']
  for (const c of cases) t.equal(parseIPv4(c) >= 0, isIPv4(c), JSON.stringify(c))
  t.equal(parseIPv4('192.0.2.1'), 0xc0000201)
  t.equal(parseIPv4('255.255.255.255'), 0xffffffff)
})

t.test('parseIPv6 and lookupAddress', async (t) => {
  t.same([...parseIPv6('2001:db8::1')], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
  t.same([...parseIPv6('::')], new Array(16).fill(0))
  t.same([...parseIPv6('::ffff:1.2.3.4')], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4])
  t.same([...parseIPv6('1:2:3:4:5:6:7:8')], [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8])
  t.same([...parseIPv6('1::')], [0, 1, ...new Array(14).fill(0)])
  // random addresses with runs of zeros, in full, compressed (WHATWG URL canonical) and upper-case forms
  let x = 99
  const wrong: string[] = []
  for (let i = 0; i < 3000; i++) {
    const bytes = new Uint8Array(16)
    for (let j = 0; j < 16; j++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0
      bytes[j] = (x >>> 16) % 3 === 0 ? 0 : (x >>> 8) & 255
    }
    const full = Array.from({ length: 8 }, (_, g) => (((bytes[g * 2] ?? 0) << 8) | (bytes[g * 2 + 1] ?? 0)).toString(16)).join(':')
    const short = new URL(`http://[${full}]/`).hostname.slice(1, -1)
    for (const form of [full, short, short.toUpperCase()]) {
      if (Buffer.compare(Buffer.from(parseIPv6(form)), Buffer.from(bytes)) !== 0) wrong.push(form)
    }
  }
  t.same(wrong, [], '3000 random addresses in three forms')
  t.same(lookupAddress('::ffff:1.2.3.4'), { ip: '1.2.3.4', version: 4, v4: 0x01020304 })
  t.same(lookupAddress('::FFFF:0102:0304'), { ip: '1.2.3.4', version: 4, v4: 0x01020304 })
  t.same(lookupAddress('0:0:0:0:0:ffff:102:304'), { ip: '1.2.3.4', version: 4, v4: 0x01020304 })
  t.same(lookupAddress('64:ff9b::102:304'), { ip: '1.2.3.4', version: 4, v4: 0x01020304 }, 'NAT64 well-known prefix, as the client-IP stage maps it')
  t.match(lookupAddress('[2001:db8::1]'), { ip: '2001:db8::1', version: 6 })
  t.match(lookupAddress('fe80::1%eth0'), { ip: 'fe80::1', version: 6 })
  t.match(lookupAddress('::ffff:0:1.2.3.4'), { ip: '::ffff:0:102:304', version: 6 }, 'not the mapped prefix (canonical text)')
  t.equal(lookupAddress('1.2.3.4:80'), null)
  t.equal(lookupAddress('1.2.3.4%eth0'), null, 'a zone id on an IPv4 address is junk')
  t.match(lookupAddress(' 1.2.3.4 '), { ip: '1.2.3.4', version: 4 })
  t.equal(lookupAddress('junk'), null)
  t.equal(lookupAddress(''), null)
})

/** The search tree walked bit by bit from the root, as the MaxMind DB spec describes it: the reference. */
function plainWalk (db: Buffer, meta: { nodeCount: number, recordSize: 24 | 28 | 32 }, bytes: Uint8Array): number {
  const nodes = nodeReader(db, meta.recordSize)
  let node = 0
  for (let i = 0; i < bytes.length * 8 && node < meta.nodeCount; i++) {
    node = (((bytes[i >> 3] ?? 0) >> (7 - (i & 7))) & 1) === 1 ? nodes.right(node) : nodes.left(node)
  }
  return node > meta.nodeCount ? node - meta.nodeCount - 16 : -1
}

async function agree (t: Test, label: string, db: Buffer, addrs: string[]): Promise<void> {
  const meta = await verifyMmdb(db, { deep: false })
  const walker = new TreeWalker(db, meta)
  const reader = new Reader<Response>(db)
  const byOffset = new Map<number, string>()
  const wrong: string[] = []
  for (const a of addrs) {
    const v4 = parseIPv4(a)
    const off = v4 >= 0 ? walker.findV4(v4) : walker.findV6(parseIPv6(a))
    const bytes = v4 < 0 ? parseIPv6(a) : meta.ipVersion === 4 ? Uint8Array.of(v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255) : parseIPv6(`::${a}`)
    const ref = plainWalk(db, meta, bytes)
    if (off !== ref) wrong.push(`${a}: offset ${off}, the plain walk's ${ref}`)
    const rec = JSON.stringify(reader.get(a))
    if ((off < 0) !== (rec === 'null')) wrong.push(`${a}: offset ${off}, record ${rec}`)
    if (off < 0) continue
    const seen = byOffset.get(off)
    if (seen !== undefined && seen !== rec) wrong.push(`${a}: offset ${off} shared by different records`)
    byOffset.set(off, rec)
  }
  t.same(wrong, [], `${label}: ${addrs.length} addresses, ${byOffset.size} records`)
}

function spread (n: number, seed: number): string[] {
  const out: string[] = []
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    out.push(`${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`)
  }
  return out
}

t.test('the walk finds the record mmdb-lib finds', async (t) => {
  const addrs = [...spread(20000, 7), '2001:db8::1', '2001:218::1', '2001:480:10::1', '::1', '2a02:2770::1', '2606:4700::1111', '2001:4860:4860::8888']
  await agree(t, 'embedded default', await readFile(embeddedDatabasePath()), addrs)
  for (const recordSize of [24, 28, 32] as const) {
    const db = buildMmdb([
      { network: '0.0.0.0/1', data: { v: 'low' } }, { network: '192.0.2.0/24', data: { v: 'doc' } }, { network: '10.0.0.0/8', data: { v: 'ten' } },
      { network: '2001:db8::/32', data: { v: 'six' } }
    ], { databaseType: 'T', buildEpoch: new Date(), recordSize })
    await agree(t, `generated, record size ${recordSize}`, db, [...addrs, '192.0.2.9', '10.9.9.9'])
  }
  // IPv4 walks start from a table of the first 16 bits: networks ending above, at and below that depth, in IPv4
  // and IPv6 trees, each probed at both ends of its range and just outside them
  const nets = ['0.0.0.0/1', '128.0.0.0/2', '172.16.0.0/12', '10.1.0.0/16', '10.2.0.0/15', '198.51.100.0/24', '203.0.113.7/32', '255.255.255.254/31']
  const edges: string[] = []
  for (const net of nets) {
    const [ip = '', len = '32'] = net.split('/')
    const first = parseIPv4(ip)
    const last = (first + 2 ** (32 - Number(len)) - 1) >>> 0
    for (const v of [first - 1, first, first + 1, last - 1, last, last + 1]) {
      if (v < 0 || v > 0xffffffff) continue
      edges.push(`${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`)
    }
  }
  for (const ipVersion of [4, 6] as const) {
    const db = buildMmdb(nets.map((network, i) => ({ network, data: { v: i } })), { databaseType: 'T', buildEpoch: new Date(), recordSize: 24, ipVersion })
    await agree(t, `generated IPv${ipVersion} tree, networks above, at and below /16`, db, [...edges, ...spread(5000, 11)])
  }
  // an IPv6 tree with no IPv4 networks: the path of ::/96 ends early, every IPv4 address finds nothing
  const v6only = buildMmdb([{ network: '2001:db8::/32', data: { v: 'six' } }], { databaseType: 'T', buildEpoch: new Date(), recordSize: 24, ipv4Aliases: false })
  await agree(t, 'generated IPv6 tree without IPv4 networks', v6only, [...edges, ...spread(2000, 13), '2001:db8::1'])
  const dir = requireOfficialFixtures(t, 'the tree walk on MaxMind\'s test databases')
  if (dir === null) return
  for (const f of ['GeoIP2-City-Test.mmdb', 'GeoIP2-Anonymous-IP-Test.mmdb', 'GeoIP2-Country-Test.mmdb']) {
    await agree(t, f, await readFile(join(dir, f)), [...addrs, '81.2.69.160', '2.125.160.216', '216.160.83.56', '1.2.0.1', '::81.2.69.160'])
  }
})
