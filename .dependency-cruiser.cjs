/*
 * The one dependency rule of src/ (README, "Architecture"): a module imports only from its own folder or from a
 * layer below its own. Layers, lowest first; folders on one line are peers and may not import each other.
 *
 *   core ← net ← config ← infra ← geo ← limits, audit, screening ← policy ← runtime ← reload ← http, admin ← server ← cli
 *   mock (the demo backend) stands beside core: it imports nothing of the gateway.
 *
 * `npm test` runs `depcruise src`, so an import that breaks the rule fails the build.
 */
const layers = [
  ['core', 'mock'],
  ['net'],
  ['config'],
  ['infra'],
  ['geo'],
  ['limits', 'audit', 'screening'],
  ['policy'],
  ['runtime.ts'],
  ['reload.ts'],
  ['http', 'admin'],
  ['server.ts'],
  ['cli']
]
const path = (name) => name.endsWith('.ts') ? `^src/${name.replace('.', '\\.')}$` : `^src/${name}/`
const rules = []
layers.forEach((group, rank) => {
  const allowed = layers.slice(0, rank).flat()
  for (const name of group) {
    const below = allowed.length === 0 ? null : `(${allowed.map(path).join('|')})`
    rules.push({
      name: `layer:${name}`,
      comment: `src/${name} may import its own folder${below === null ? '' : ' and: ' + allowed.join(', ')}`,
      severity: 'error',
      from: { path: path(name) },
      to: { path: '^src/', pathNot: below === null ? [path(name)] : [path(name), below] }
    })
  }
})

module.exports = {
  forbidden: [
    ...rules,
    {
      name: 'layer:unplaced',
      comment: 'every file under src/ belongs to a layer listed in .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/', pathNot: layers.flat().map(path) },
      to: {}
    },
    {
      name: 'no-circular',
      comment: 'no import cycles, within a folder or across folders',
      severity: 'error',
      from: {},
      to: { circular: true }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] }
  }
}
