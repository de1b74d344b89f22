/* The built `geogate check-config`, as a process (npm test builds dist/ first). */
import t from 'tap'
import { runCli, ROOT, type CliResult } from '../helpers/process.js'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const run = async (args: string[]): Promise<CliResult> => await runCli(['check-config', ...args])

t.test('the shipped configuration passes', async (t) => {
  const ok = await run(['--config', 'config/geogate.yaml'])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, /config\/geogate\.yaml: ok/)
})

t.test('every error is printed with its path, exit 1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gg-check-'))
  const f = join(dir, 'broken.yaml')
  const text = (await readFile(join(ROOT, 'config/geogate.yaml'), 'utf8'))
    .replace('port: 8080', 'port: eighty')
    .replace('failMode: closed', 'failMode: sideways')
    .replace('backend: mock-us, classification: EAR99', 'backend: nowhere, classification: EAR99')
  await writeFile(f, text)
  const bad = await run(['--config', f])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /configuration error/)
  t.match(bad.stderr, /\/server\/port/)
  t.match(bad.stderr, /\/tiers\/tier2\/failMode/)
})

t.test('a missing file is named, exit 1', async (t) => {
  const missing = await run(['--config', '/nonexistent/geogate.yaml'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /\/nonexistent\/geogate\.yaml: no such file/)
})

t.test('check-config and serve refuse an unset variable and an enum typo with the same text', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gg-check-'))
  const f = join(dir, 'typo.yaml')
  const text = (await readFile(join(ROOT, 'config/geogate.yaml'), 'utf8'))
    .replace('url: ${REDIS_URL:-}', 'url: ${REDIS_URL_TYPO}')
    .replace('capabilities: [chat, completions, embeddings, tools, streaming]', 'capabilities: [chat, completions, embedding, tools, streaming]')
  await writeFile(f, text)
  const lines = [
    '  /redis/url: environment variable REDIS_URL_TYPO is not set (write ${REDIS_URL_TYPO:-default} for a default, or ${REDIS_URL_TYPO:-} to make it optional)',
    '  /tiers/tier1/capabilities/2: "embedding" is not allowed; allowed: chat, completions, embeddings, images, audio, fine-tuning, tools, streaming'
  ]
  const check = await run(['--config', f])
  t.equal(check.code, 1)
  t.equal(check.stderr, `${f}: 2 configuration error(s)\n${lines.join('\n')}\n`, 'one line per error, nothing per schema branch')
  const serve = await runCli(['serve', '--config', f])
  t.equal(serve.code, 1)
  t.equal(serve.stderr, check.stderr, 'serve says the same')
})
