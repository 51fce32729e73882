/**
 * The noise a newcomer meets (issue 9, "Noise"), checked from what is committed:
 * - `npm install` warns EBADENGINE when a locked package wants a Node.js the project does not
 *   require: every engines range in package-lock.json must accept every Node.js our own
 *   `engines` allows (checked at its lowest version, and at the one running the tests);
 * - npm 11 ends an install with "install scripts not yet covered by allowScripts": every locked
 *   package with an install script is decided on in package.json's allowScripts, and the README
 *   says what a user's own project has to do about them;
 * - tests that throw on purpose must not print warnings into `npm test`'s output.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import semver from 'semver'
import { spawn } from 'node:child_process'
import { ROOT } from './helpers/index.js'

interface LockEntry {
  version?: string
  engines?: { node?: string } | string[]
  hasInstallScript?: boolean
  dev?: boolean
}

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string }
  devEngines: { runtime: { name: string; version: string } }
  allowScripts?: Record<string, boolean>
  dependencies: Record<string, string>
}
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }
const packages = Object.entries(lock.packages).filter(([where]) => where !== '')
const nameOf = (where: string): string => where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length)

test('no locked package wants a newer Node.js than the project requires (no EBADENGINE)', () => {
  // What a user installs (dependencies) must run on every Node.js of `engines`; what a
  // contributor installs too (devDependencies) on every Node.js of `devEngines`.
  const lowest = semver.minVersion(pkg.engines.node)
  const lowestDev = semver.minVersion(pkg.devEngines.runtime.version)
  assert.ok(lowest && lowestDev)
  const wrong: string[] = []
  for (const [where, entry] of packages) {
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node
    if (range === undefined) continue
    for (const node of [entry.dev ? lowestDev.version : lowest.version, process.versions.node]) {
      if (!semver.satisfies(node, range, { includePrerelease: true })) wrong.push(`${nameOf(where)}@${entry.version} wants node ${range}, not ${node}`)
    }
  }
  assert.deepEqual(wrong, [])
})

test('every locked package with an install script is decided on in allowScripts, and the README says what to do', () => {
  const withScripts = packages.filter(([, entry]) => entry.hasInstallScript).map(([where]) => nameOf(where))
  assert.ok(withScripts.length > 0, 'classic-level at least has one')
  const allowed = pkg.allowScripts ?? {}
  const decided = (name: string): boolean => Object.keys(allowed).some((key) => key === name || key.startsWith(name + '@'))
  assert.deepEqual(withScripts.filter((name) => !decided(name)), [], 'not yet covered by allowScripts')
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  assert.match(readme, /not yet covered by allowScripts/, 'the README quotes the warning')
  for (const name of withScripts) assert.ok(readme.includes('`' + name + '`'), `the README names ${name}`)
  // A user's project installs our dependencies only: those with scripts need a word of their own.
  const runtime = withScripts.filter((name) => name in pkg.dependencies)
  for (const name of runtime) assert.match(readme, new RegExp(`npm install-scripts approve ${name}`), `the README says how to allow ${name}`)
})

test('test files that throw on purpose print no warnings into the test output', async () => {
  // The files whose handlers or starts fail on purpose, run the way `npm test` runs them.
  const files = ['test/broker.test.ts', 'test/consistency.test.ts']
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT // a nested runner reports on its own output, as at the top level
  const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-timeout=120000', ...files], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, out }))
  })
  assert.equal(r.code, 0, r.out.slice(-2000))
  assert.match(r.out, /# pass \d+/)
  const noise = r.out.split('\n').filter((l) => /\(node:\d+\)|Warning:|HandlerError:|StorageError:/.test(l))
  assert.deepEqual(noise, [])
})
