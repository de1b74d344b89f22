/*
 * The HTML usage report, rendered by a real headless Chromium (Debian's chromium; puppeteer-core drives it and
 * downloads nothing): the test asserts on what a reader sees, not on the markup.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import puppeteer, { type Browser } from 'puppeteer-core'
import { buildReport, reportHtml } from '../../src/audit/report.js'
import { reportContext } from '../../src/audit/report-context.js'
import { entry, openWriter, tempDir } from '../helpers/audit.js'
import { absent } from '../helpers/needs.js'

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p !== undefined && p !== '' && existsSync(p))
const LONG_RULE = 'key-tier:enterprise-research-partners-eu:capability:fine-tuning'

async function auditLog (dir: string): Promise<void> {
  const a = await openWriter(dir, { writer: 'gw-a' })
  const b = await openWriter(dir, { writer: 'gw-b' })
  a.append(entry(0, { country: 'DE', model: 'frontier-1', classification: '4E091', ts: '2026-11-03T10:00:00.000Z' }))
  a.append(entry(1, { country: 'CU', model: 'llama-3.1-8b', decision: 'deny', rule: 'location:embargoed', status: 451, tokensIn: null, tokensOut: null, ts: '2026-11-03T11:00:00.000Z' }))
  b.append(entry(2, { country: 'FR', model: 'llama-3.1-8b', decision: 'deny', rule: 'limit:tier2:requests', status: 429, tokensIn: null, tokensOut: null, ts: '2026-11-04T10:00:00.000Z' }))
  b.append(entry(3, { country: 'BR', model: 'frontier-1', classification: '4E091', decision: 'deny', rule: LONG_RULE, status: 403, tokensIn: null, tokensOut: null, ts: '2026-11-04T11:00:00.000Z' }))
  b.append(entry(4, { country: null, location: 'internal', crossBorder: false, model: 'llama-3.1-8b', ts: '2026-11-05T11:00:00.000Z' }))
  a.appendAdminChange({ ts: '2026-11-04T12:00:00.000Z', actor: 'ops-alice', role: 'admin', action: 'tier.patch', target: 'tier2', before: { limits: { requestsPerMinute: 60 } }, after: { limits: { requestsPerMinute: 30 } } })
  await a.close()
  await b.close()
}

interface Seen { text: string, clipped: string[] }

/** Run in the page (a string: the tests are typed without the DOM library). An SVG label is cut when any part of it lies outside its drawing. */
const SEEN = `(() => {
  const clipped = []
  for (const svg of document.querySelectorAll('svg')) {
    const box = svg.getBoundingClientRect()
    for (const el of svg.querySelectorAll('text')) {
      const r = el.getBoundingClientRect()
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) clipped.push(el.textContent)
    }
  }
  return { text: document.body.innerText, clipped }
})()`

async function render (browser: Browser, file: string): Promise<Seen> {
  const page = await browser.newPage()
  try {
    await page.goto(`file://${file}`, { waitUntil: 'load' })
    return await page.evaluate(SEEN) as Seen
  } finally {
    await page.close()
  }
}

t.test('the HTML report in Chromium: labels, classifications, admin changes, verification, rule legend, writers', async (t) => {
  if (CHROMIUM === undefined) { absent(t, 'chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)', 'the HTML report as rendered by a browser'); return }
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  await auditLog(dir)
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
  t.teardown(async () => { await browser.close() })

  const report = await buildReport(dir, '2026-11')
  const file = join(dir, 'report.html')
  await writeFile(file, reportHtml(report, `audit log in ${dir}`, await reportContext(dir, '2026-11')))
  const seen = await render(browser, file)
  t.same(seen.clipped, [], 'no chart label is cut')
  t.match(seen.text, LONG_RULE, 'the long rule id is shown in full')
  t.match(seen.text, /2 writer\(s\): gw-a, gw-b/, 'every writer is named')
  t.notMatch(seen.text, /Source: audit log of gw-a\./, 'not one writer for two')
  t.match(seen.text, /Classification \(ECCN\)/, 'a classification column')
  t.match(seen.text, /frontier-1\t4E091/, 'the model\'s recorded ECCN beside it')
  t.match(seen.text, /Integrity of the chains read: verified — 2 chain\(s\)/, 'the verification result of the chains read')
  t.match(seen.text, /Admin changes in the period \(1\)/)
  t.match(seen.text, /ops-alice\tadmin\ttier\.patch\ttier2\t\{"limits":\{"requestsPerMinute":60\}\}\t\{"limits":\{"requestsPerMinute":30\}\}/, 'who changed what, before and after')
  t.match(seen.text, /Rule ids/)
  t.match(seen.text, /limit:tier2:requests\s+tier tier2: limits\.requestsPerMinute reached \(429\)/, 'the legend explains each rule id')
  t.match(seen.text, /location:embargoed\s+the caller's location maps to tier embargoed, which refuses everything/)
  t.match(seen.text, /\ninternal\t/, 'an internal caller is its own row, not "unknown"')
  t.notMatch(seen.text, /\nunknown\t/)

  // The same log with one record altered: the report says it does not verify.
  const segDir = (await readdir(dir)).find((f) => /^gw-b_\d{8}_\d+\.jsonl$/.test(f))
  t.ok(segDir, 'a segment of gw-b')
  const seg = join(dir, segDir ?? '')
  await writeFile(seg, (await readFile(seg, 'utf8')).replace('"country":"FR"', '"country":"US"'))
  await writeFile(file, reportHtml(await buildReport(dir, '2026-11'), `audit log in ${dir}`, await reportContext(dir, '2026-11')))
  const tampered = await render(browser, file)
  t.match(tampered.text, /Integrity of the chains read: VERIFICATION FAILED at .*gw-b/, 'a tampered chain is reported, with where')
})
