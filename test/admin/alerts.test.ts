import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { Metrics } from '../../src/infra/metrics.js'
import { loadConfig, parseConfig } from '../../src/config/load.js'
import pino from 'pino'
import { ScreeningService } from '../../src/screening/service.js'
import { FileScreeningStore } from '../../src/screening/store.js'
import { baseConfig } from '../helpers/gateway.js'

interface Rule { alert?: string, record?: string, expr?: string, for?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
interface RuleFile { groups: Array<{ name: string, rules: Rule[] }> }
interface Panel { type: string, title: string, targets?: Array<{ expr: string }>, panels?: Panel[] }

function promtool (...args: string[]): { status: number | null, out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8' })
  if (r.error !== undefined) throw new Error('promtool is needed by this test: apt-get install prometheus (see README, Quick start)', { cause: r.error })
  return { status: r.status, out: r.stdout + r.stderr }
}

/** Every series name the gateway exports: declared metrics plus the _bucket/_sum/_count (and _total) forms. */
async function exportedNames (): Promise<Set<string>> {
  const m = new Metrics()
  // the screening service registers its gauges on the gateway's registry (src/screening/service.ts)
  new ScreeningService(new FileScreeningStore(tmpdir()), { config: () => parseConfig({ ...baseConfig() }).screening, log: pino({ level: 'silent' }), registry: m.registry })
  const names = new Set<string>()
  for (const metric of await m.registry.getMetricsAsJSON()) {
    names.add(metric.name)
    if (String(metric.type) === 'histogram' || String(metric.type) === 'summary') for (const s of ['_bucket', '_sum', '_count']) names.add(metric.name + s)
  }
  return names
}

/** geogate_* names used in a PromQL expression. */
function metricsIn (expr: string): string[] {
  return [...expr.matchAll(/\b(geogate_[a-zA-Z0-9_]+)\b/g)].map((m) => m[1] ?? '')
}

t.test('alert rules: promtool accepts them, their unit tests pass, and they cover what the issue names', async (t) => {
  const check = promtool('check', 'rules', 'docker/prometheus/alerts.yml')
  t.equal(check.status, 0, check.out)
  const unit = promtool('test', 'rules', 'docker/prometheus/alerts.test.yml')
  t.equal(unit.status, 0, unit.out)

  const file = parse(await readFile('docker/prometheus/alerts.yml', 'utf8')) as RuleFile
  const names = await exportedNames()
  const rules = file.groups.flatMap((g) => g.rules)
  t.ok(rules.length >= 7)
  const seen = new Set<string>()
  for (const r of rules) {
    const name = r.alert ?? '(no name)'
    t.ok(r.alert !== undefined && /^[A-Z][A-Za-z0-9]+$/.test(r.alert), `${name}: alert name`)
    t.notOk(seen.has(name), `${name}: unique`)
    seen.add(name)
    t.type(r.expr, 'string', `${name}: expr`)
    t.ok(['info', 'warning', 'critical'].includes(r.labels?.severity ?? ''), `${name}: severity label`)
    t.ok((r.annotations?.summary ?? '').length > 0 && (r.annotations?.description ?? '').length > 0, `${name}: summary and description`)
    const used = metricsIn(r.expr ?? '')
    t.ok(used.length > 0, `${name}: reads a geogate metric`)
    for (const m of used) t.ok(names.has(m), `${name}: ${m} is exported by src/infra/metrics.ts`)
  }
  const exprs = rules.map((r) => r.expr ?? '')
  const covers = (re: RegExp): boolean => exprs.some((e) => re.test(e))
  t.ok(covers(/geogate_cross_border_requests_total\{decision="deny"\}/), 'spikes of refused cross-border attempts')
  t.ok(covers(/geogate_key_country_mismatch_total/), 'a key used outside its declared country')
  t.ok(covers(/geogate_key_new_country_total/), 'a key appearing from a new country')
  t.ok(covers(/geogate_anonymizer_requests_total/), 'traffic from anonymizers')
  t.ok(covers(/geogate_geodb_stale/), 'a stale GeoIP database')
  t.ok(covers(/geogate_limiter_degraded_total/), 'Redis degraded')
  t.ok(covers(/geogate_audit_writer_lag_seconds/), 'audit lag')
  t.ok(covers(/geogate_audit_write_failing/), 'audit writes failing (records cannot be made durable)')
  t.ok(covers(/geogate_audit_unavailable_total/), 'interactions refused with 503 audit_unavailable')
  t.ok(covers(/geogate_audit_records_dropped_total/) && covers(/geogate_audit_unrecorded_served_total/), 'interactions without a durable record')

  const scrape = promtool('check', 'config', '--syntax-only', 'docker/prometheus/prometheus.yml')
  t.equal(scrape.status, 0, scrape.out)
})

t.test('the Grafana dashboard: valid JSON, every query parses and reads only exported metrics', async (t) => {
  const dash = JSON.parse(await readFile('docker/grafana/dashboards/geogate.json', 'utf8')) as { uid: string, title: string, panels: Panel[] }
  t.ok(dash.uid !== '' && dash.title !== '')
  const names = await exportedNames()
  const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])])
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, expr: x.expr })))
  t.ok(exprs.length >= 20, `${exprs.length} queries`)
  for (const { panel, expr } of exprs) {
    const used = metricsIn(expr)
    t.ok(used.length > 0, `${panel}: reads a geogate metric`)
    for (const m of used) t.ok(names.has(m), `${panel}: ${m} is exported by src/infra/metrics.ts`)
  }
  // promtool has no "parse this expression" command: check them as recording rules, with Grafana's variables filled in.
  const dir = await mkdtemp(join(tmpdir(), 'geogate-dash-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const rules = { groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `geogate:dashboard:${i}`, expr: e.expr.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '1h') })) }] }
  await writeFile(join(dir, 'dash-rules.yml'), stringify(rules))
  const check = promtool('check', 'rules', join(dir, 'dash-rules.yml'))
  t.equal(check.status, 0, check.out)
  for (const needed of ['geogate_cross_border_requests_total', 'geogate_key_country_mismatch_total', 'geogate_key_new_country_total', 'geogate_anonymizer_requests_total',
    'geogate_geodb_age_days', 'geogate_limiter_degraded_total', 'geogate_audit_writer_lag_seconds', 'geogate_gateway_added_seconds_bucket',
    'geogate_upstream_seconds_bucket', 'geogate_time_to_first_token_seconds_bucket', 'geogate_tokens_total', 'geogate_process_nodejs_eventloop_lag_p99_seconds']) {
    t.ok(exprs.some((e) => e.expr.includes(needed)), `a panel shows ${needed}`)
  }
})

t.test('docker/compose.monitoring.yaml: mounts what exists, scrapes the compose gateway with a token it accepts', async (t) => {
  const overlay = parse(await readFile('docker/compose.monitoring.yaml', 'utf8')) as { services: Record<string, { volumes?: string[], depends_on?: string[] }> }
  const base = parse(await readFile('docker/compose.yaml', 'utf8')) as { services: Record<string, unknown> }
  for (const [name, svc] of Object.entries(overlay.services)) {
    for (const v of svc.volumes ?? []) {
      const host = v.split(':')[0] ?? ''
      t.ok(existsSync(join('docker', host)), `${name}: ${host} exists`)
    }
    for (const d of svc.depends_on ?? []) t.ok(d in overlay.services || d in base.services, `${name} depends on ${d}, a service`)
  }
  const prom = parse(await readFile('docker/prometheus/prometheus.yml', 'utf8')) as { scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }> }
  const targets = prom.scrape_configs.flatMap((s) => s.static_configs.flatMap((c) => c.targets))
  for (const target of targets) t.ok((target.split(':')[0] ?? '') in base.services, `${target} is a compose service`)
  const { config } = await loadConfig('config/geogate.yaml', {})
  const token = (await readFile('docker/prometheus/geogate-auditor-token', 'utf8')).trim()
  t.ok(config.admin.tokens.some((x) => x.role === 'auditor' && x.sha256 === createHash('sha256').update(token).digest('hex')), 'the demo token is an auditor token of the shipped config')
})
