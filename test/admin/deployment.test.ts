import t from 'tap'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseAllDocuments, parse } from 'yaml'
import { parseConfig, interpolateEnv, type ConfigIssue } from '../../src/config/load.js'

/* The Kubernetes manifests in docker/k8s hang together: names, ports, paths, secrets and the embedded config. */

type Obj = Record<string, unknown>
interface Probe { httpGet?: { path: string, port: string | number } }
interface Container {
  name: string
  command?: string[]
  args?: string[]
  ports?: Array<{ name: string, containerPort: number }>
  env?: Array<{ name: string, value?: string, valueFrom?: { secretKeyRef?: { name: string, key: string }, fieldRef?: { fieldPath: string } } }>
  readinessProbe?: Probe
  livenessProbe?: Probe
  resources?: { requests?: Obj, limits?: Obj }
  securityContext?: { allowPrivilegeEscalation?: boolean, readOnlyRootFilesystem?: boolean, capabilities?: { drop?: string[] } }
  volumeMounts?: Array<{ name: string, mountPath: string }>
}
interface PodSpec {
  terminationGracePeriodSeconds?: number
  securityContext?: { runAsNonRoot?: boolean, runAsUser?: number }
  initContainers?: Container[]
  containers: Container[]
  volumes: Array<{ name: string, configMap?: { name: string }, persistentVolumeClaim?: { claimName: string }, emptyDir?: Obj }>
}
interface Doc { kind: string, metadata: { name: string }, spec?: Obj, data?: Record<string, string>, stringData?: Record<string, string> }

const DIR = 'docker/k8s'

t.test('docker/k8s: a consistent, hardened deployment', async (t) => {
  const kustomization = parse(await readFile(join(DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] }
  const files = (await readdir(DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  t.same([...kustomization.resources].sort(), files.sort(), 'kustomization lists every manifest')
  const docs: Doc[] = []
  for (const f of files) {
    for (const d of parseAllDocuments(await readFile(join(DIR, f), 'utf8'))) {
      t.same(d.errors, [], `${f} parses`)
      docs.push(d.toJS() as Doc)
    }
  }
  const one = (kind: string, name?: string): Doc => {
    const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name))
    if (found.length !== 1) throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`)
    return found[0] as Doc
  }
  const deploy = one('Deployment')
  const spec = deploy.spec as { selector: { matchLabels: Record<string, string> }, template: { metadata: { labels: Record<string, string> }, spec: PodSpec } }
  const pod = spec.template.spec
  const podLabels = spec.template.metadata.labels
  const matches = (sel: Record<string, string>): boolean => Object.entries(sel).every(([k, v]) => podLabels[k] === v)
  t.ok(matches(spec.selector.matchLabels), 'the Deployment selects its own pods')

  const gw = pod.containers.find((c) => c.name === 'geogate')
  if (gw === undefined) throw new Error('no geogate container')
  const configArg = gw.args?.[(gw.args.indexOf('--config')) + 1] ?? ''

  // The embedded configuration: valid once the environment the pod provides is filled in.
  const cm = one('ConfigMap')
  const configMount = gw.volumeMounts?.find((m) => configArg.startsWith(m.mountPath + '/'))
  t.ok(configMount, `--config ${configArg} is on a mounted volume`)
  const cmVolume = pod.volumes.find((v) => v.name === configMount?.name)
  t.equal(cmVolume?.configMap?.name, cm.metadata.name, 'that volume is the ConfigMap')
  const text = cm.data?.[configArg.split('/').at(-1) ?? ''] ?? ''
  t.ok(text.length > 0, 'the ConfigMap holds the file --config names')
  const envNames = new Set((gw.env ?? []).map((e) => e.name))
  const referenced = [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1] ?? '')
  for (const v of referenced) t.ok(envNames.has(v), `\${${v}} is set in the container's environment`)
  const issues: ConfigIssue[] = []
  const raw = interpolateEnv(parse(text), Object.fromEntries(referenced.map((v) => [v, v === 'REDIS_URL' ? 'redis://redis:6379' : `value-of-${v}`])), '', issues)
  t.same(issues, [])
  const config = parseConfig(raw, 'configmap')
  t.ok(config.redis.url !== undefined, 'Redis configured: limits and live policy shared by every replica')
  t.equal(config.server.adminHost, '0.0.0.0', 'the admin plane listens on the pod IP so the kubelet can probe it')

  // Probes on the admin port, ports agreeing with the config.
  const port = (name: string): number | undefined => gw.ports?.find((p) => p.name === name)?.containerPort
  t.equal(port('http'), config.server.port)
  t.equal(port('admin'), config.server.adminPort)
  t.match(gw.readinessProbe?.httpGet, { path: '/readyz', port: 'admin' })
  t.match(gw.livenessProbe?.httpGet, { path: '/healthz', port: 'admin' })
  // server.ts gives cancelled streams and idle connections up to 2 × 5 s after the grace period.
  t.ok((pod.terminationGracePeriodSeconds ?? 30) * 1000 > config.server.shutdownGraceMs + 10_000, 'the kubelet waits longer than the gateway drains')

  // Hardening, for every container including init containers.
  t.equal(pod.securityContext?.runAsNonRoot, true)
  t.ok((pod.securityContext?.runAsUser ?? 0) > 0)
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name}: read-only root`)
    t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${c.name}: no privilege escalation`)
    t.ok(c.securityContext?.capabilities?.drop?.includes('ALL'), `${c.name}: no capabilities`)
    t.ok(c.resources?.requests?.cpu !== undefined && c.resources.requests.memory !== undefined && c.resources.limits?.memory !== undefined, `${c.name}: resources`)
    for (const m of c.volumeMounts ?? []) t.ok(pod.volumes.some((v) => v.name === m.name), `${c.name}: volume ${m.name} exists`)
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef
      if (ref === undefined) continue
      const secret = one('Secret', ref.name)
      t.ok(secret.stringData?.[ref.key] !== undefined || secret.data?.[ref.key] !== undefined, `${c.name}: secret key ${ref.key} exists`)
    }
  }

  // The audit spool is on the persistent volume, one directory per pod.
  const auditMount = gw.volumeMounts?.find((m) => config.audit.dir.startsWith(m.mountPath + '/'))
  t.ok(auditMount, `audit.dir ${config.audit.dir} is on a mounted volume`)
  const pvc = one('PersistentVolumeClaim')
  t.equal(pod.volumes.find((v) => v.name === auditMount?.name)?.persistentVolumeClaim?.claimName, pvc.metadata.name, 'and that volume is the PVC')
  t.ok((pvc.spec as { accessModes: string[] }).accessModes.includes('ReadWriteMany'), 'every replica can mount it')
  t.match(config.audit.dir, /\/value-of-POD_NAME$/, 'one hash chain per pod')
  t.ok((gw.env ?? []).some((e) => e.name === 'POD_NAME' && e.valueFrom?.fieldRef?.fieldPath === 'metadata.name'))
  // Signed digests, the key a Secret mounted as a file (not the ConfigMap, not the audit volume).
  t.equal(config.audit.require, 'signed')
  // the deepest mount holding the file (the key's mount sits under the config's)
  const keyMount = (gw.volumeMounts ?? []).filter((m) => (config.audit.signingKeyFile ?? '').startsWith(m.mountPath + '/')).sort((a, b) => b.mountPath.length - a.mountPath.length)[0]
  const keyVolume = pod.volumes.find((v) => v.name === keyMount?.name) as { secret?: { secretName: string } } | undefined
  t.ok(keyVolume?.secret !== undefined, `audit.signingKeyFile ${String(config.audit.signingKeyFile)} is on a Secret volume`)
  t.ok(one('Secret', keyVolume?.secret?.secretName).stringData?.[(config.audit.signingKeyFile ?? '').split('/').at(-1) ?? ''] !== undefined, 'and the Secret holds that file')
  for (const db of config.geo.databases ?? []) t.ok(gw.volumeMounts?.some((m) => db.startsWith(m.mountPath + '/')), `${db} is on a mounted volume`)

  // Services, autoscaling, disruption budget, network policy.
  const services = docs.filter((d) => d.kind === 'Service')
  for (const s of services) {
    const ss = s.spec as { selector: Record<string, string>, ports: Array<{ targetPort: string }> }
    t.ok(matches(ss.selector), `${s.metadata.name} selects the pods`)
    for (const p of ss.ports) t.ok(port(p.targetPort) !== undefined, `${s.metadata.name}: target port ${p.targetPort} exists`)
  }
  const publicSvc = services.find((s) => (s.spec as { ports: Array<{ targetPort: string }> }).ports.some((p) => p.targetPort === 'http'))
  t.notOk((publicSvc?.spec as { ports: Array<{ targetPort: string }> }).ports.some((p) => p.targetPort === 'admin'), 'the public Service does not carry the admin port')
  const hpa = one('HorizontalPodAutoscaler').spec as { scaleTargetRef: { kind: string, name: string }, minReplicas: number, maxReplicas: number }
  t.match(hpa.scaleTargetRef, { kind: 'Deployment', name: deploy.metadata.name })
  const pdb = one('PodDisruptionBudget').spec as { minAvailable: number, selector: { matchLabels: Record<string, string> } }
  t.ok(matches(pdb.selector.matchLabels), 'the PDB covers the pods')
  t.ok(pdb.minAvailable < hpa.minReplicas, 'a node drain can still evict one pod')
  const np = one('NetworkPolicy').spec as { ingress: Array<{ from?: unknown[], ports: Array<{ port: number }> }> }
  t.notOk(np.ingress.some((r) => r.from === undefined && r.ports.some((p) => p.port === config.server.adminPort)), 'the admin port is not open to everyone')
})

t.test('docker/k8s: the daily screening import reaches the admin API with an admin token', async (t) => {
  const docs = parseAllDocuments(await readFile(join(DIR, 'screening-cronjob.yaml'), 'utf8')).map((d) => d.toJS() as Doc)
  const cron = docs.find((d) => d.kind === 'CronJob')
  if (cron === undefined) throw new Error('no CronJob')
  const job = (cron.spec as { schedule: string, jobTemplate: { spec: { template: { metadata: { labels: Record<string, string> }, spec: PodSpec } } } })
  t.match(job.schedule, /^\d+ \d+ \* \* \*$/, 'daily')
  const pod = job.jobTemplate.spec.template.spec
  const imp = pod.containers.find((c) => c.name === 'import')
  t.same(imp?.args?.slice(0, 3), ['screening', 'import', '/work/consolidated.csv'])
  const adminUrl = imp?.args?.[(imp.args.indexOf('--admin-url')) + 1] ?? ''
  const svc = parseAllDocuments(await readFile(join(DIR, 'service.yaml'), 'utf8')).map((d) => d.toJS() as Doc).find((d) => d.kind === 'Service' && adminUrl.includes(`//${d.metadata.name}:`))
  t.ok(svc, `${adminUrl} is the admin Service`)
  t.ok((svc?.spec as { ports: Array<{ port: number }> }).ports.some((p) => adminUrl.endsWith(`:${p.port}`)), 'on its port')
  const secrets = parseAllDocuments(await readFile(join(DIR, 'secret.yaml'), 'utf8')).map((d) => d.toJS() as Doc)
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name}: read-only root`)
    t.ok(c.securityContext?.capabilities?.drop?.includes('ALL'), `${c.name}: no capabilities`)
    for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef !== undefined) {
      const ref = e.valueFrom.secretKeyRef
      t.ok(secrets.find((d) => d.metadata.name === ref.name)?.stringData?.[ref.key] !== undefined, `${ref.key} in the Secret ${ref.name}`)
    }
  }
  const np = parse(await readFile(join(DIR, 'networkpolicy.yaml'), 'utf8')) as { spec: { ingress: Array<{ from?: Array<{ podSelector?: { matchLabels: Record<string, string> } }>, ports: Array<{ port: number }> }> } }
  const labels = job.jobTemplate.spec.template.metadata.labels
  t.ok(np.spec.ingress.some((r) => r.ports.some((p) => p.port === 9090) && (r.from ?? []).some((f) => f.podSelector !== undefined && Object.entries(f.podSelector.matchLabels).every(([k, v]) => labels[k] === v))), 'the NetworkPolicy lets the job reach the admin port')
})
