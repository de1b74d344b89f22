import { parse } from './args.js'
import { buildReport, reportCsv, reportHtml } from '../audit/report.js'
import { reportContext } from '../audit/report-context.js'
import { auditDir, filterFrom } from './audit.js'

export const USAGE = `usage: geogate report --dir DIR (or --config FILE) --period 2026-11 [--format json|csv|html] [--country CC] [--model M] [--key-id ID] [--org ORG]
  usage per period × country × model × tier (interactions, refusals by rule, tokens in/out); progress on stderr
`

/** `geogate report`. */
export async function run (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    dir: { type: 'string' },
    period: { type: 'string' },
    format: { type: 'string', default: 'json' },
    country: { type: 'string' },
    model: { type: 'string' },
    'key-id': { type: 'string' },
    org: { type: 'string' },
    config: { type: 'string', short: 'c' }
  })
  const format = values.format
  const dir = await auditDir(values.dir, values.config)
  if (dir === undefined || values.period === undefined || (format !== 'json' && format !== 'csv' && format !== 'html')) {
    process.stderr.write(USAGE)
    return 2
  }
  const started = Date.now()
  let report
  try {
    report = await buildReport(dir, values.period, filterFrom(values), (n) => { process.stderr.write(`report: ${n} record(s) read\n`) })
  } catch (err) {
    process.stderr.write(`report: ${(err as Error).message}\n`)
    return 2
  }
  const out = format === 'json'
    ? JSON.stringify(report, null, 2) + '\n'
    : format === 'csv' ? reportCsv(report) : reportHtml(report, `audit log in ${dir}`, await reportContext(dir, values.period, filterFrom(values)))
  process.stdout.write(out)
  process.stderr.write(`report: ${report.totals.interactions} interaction(s), ${report.rows.length} row(s) in ${((Date.now() - started) / 1000).toFixed(2)} s\n`)
  return 0
}
