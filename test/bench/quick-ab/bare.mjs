import { createServer } from 'node:http'
// Run from the repository root (undici resolves from its node_modules).
import { Pool } from "undici"
const pool = new Pool('http://127.0.0.1:' + process.argv[3], { connections: 128 })
createServer(async (req, res) => {
  const chunks = []; for await (const c of req) chunks.push(c)
  const r = await pool.request({ path: req.url, method: req.method, headers: { 'content-type': 'application/json' }, body: Buffer.concat(chunks) })
  res.writeHead(r.statusCode, { 'content-type': r.headers['content-type'] })
  for await (const c of r.body) res.write(c)
  res.end()
}).listen(Number(process.argv[2]), '127.0.0.1')
