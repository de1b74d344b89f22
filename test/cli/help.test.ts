/* `--help` (and -h) on every command and subcommand prints its usage on stdout and exits 0. */
import t from 'tap'
import { runCli } from '../helpers/process.js'

const CASES: Array<[string[], RegExp]> = [
  [['--help'], /^usage: geogate <command>/],
  [['serve', '--help'], /^usage: geogate serve/],
  [['check-config', '--help'], /^usage: geogate check-config/],
  [['mock-backend', '--help'], /^usage: geogate mock-backend/],
  [['explain', '--help'], /^usage: geogate explain/],
  [['keys', '--help'], /^usage: geogate keys/],
  [['keys', 'create', '--help'], /^usage: geogate keys/],
  [['keys', 'list', '-h'], /^usage: geogate keys/],
  [['geodb', '--help'], /^usage: geogate geodb info/],
  [['geodb', 'lookup', '--help'], /geogate geodb lookup IP/],
  [['audit', '--help'], /geogate audit verify DIR/],
  [['audit', 'verify', '--help'], /geogate audit verify DIR/],
  [['audit', 'export', '--help'], /geogate audit export --dir DIR/],
  [['report', '--help'], /^usage: geogate report/],
  [['schema', '--help'], /^usage: geogate schema/]
]

for (const [args, usage] of CASES) {
  t.test(`geogate ${args.join(' ')}`, async (t) => {
    const r = await runCli(args)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, usage)
    t.equal(r.stderr, '', 'nothing on stderr')
  })
}

t.test('a real argument that looks like --help after -- is not taken for it', async (t) => {
  const r = await runCli(['check-config', '--config', '/nonexistent.yaml', '--', '--help'])
  t.not(r.code, 0)
  t.notMatch(r.stdout, /^usage:/)
})
