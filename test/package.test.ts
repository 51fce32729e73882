/**
 * The package as a user gets it. A copy of the tracked files (what a fresh clone or a git URL
 * gives) is packed with `npm pack`, whose `prepare` builds dist; the tarball is installed into a
 * scratch project the way a user installs it (`npm install <tarball>`, dependencies from the npm
 * cache); then `require`, `import`, and three TypeScript consumers (CommonJS + NodeNext, ESM +
 * NodeNext, bundler resolution) are type-checked with the repo's TypeScript, compiled and run.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { ROOT, runNode } from './helpers/index.js'

const NPM_CLI = process.env.npm_execpath && process.env.npm_execpath.endsWith('.js') ? process.env.npm_execpath : undefined
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

/** Runs npm with the given arguments in `cwd`, returning stdout (throws with stderr on failure). */
function npm(args: string[], cwd: string): string {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' }
  delete env.NODE_OPTIONS
  delete env.NODE_TEST_CONTEXT
  try {
    if (NPM_CLI) return execFileSync(process.execPath, [NPM_CLI, ...args], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    return execFileSync('npm', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string }
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}:\n${e.stderr ?? ''}\n${e.stdout ?? ''}`)
  }
}

/** Type-checks (and compiles, if the project emits) one project with the repo's TypeScript. */
async function tsc(project: string): Promise<void> {
  try {
    await promisify(execFile)(process.execPath, [TSC, '-p', project], { encoding: 'utf8' })
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string }
    throw new Error(`tsc -p ${project} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
}

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, text)
}

/** The TypeScript a user writes, the same in every consumer (only the import lines differ). */
const TS_BODY = `
const messages: Message[] = []
const options: PlatformOptions = { storage: new MemoryStore(), tcp: false, udp: false, logger: silentLogger as Logger }
const platform = new Platform(options)
platform.on('message', (m: Message) => messages.push(m))

interface Chat { text: string }
platform.messaging.on<Chat>('self.chat.message', (_topic, _sender, payload) => {
  const text: string = payload.text
  console.log('typed ' + text)
})
platform.messaging.on('self.chat.message', (_topic, _sender, payload) => {
  console.log('untyped ' + payload.text) // the seed's untyped style still compiles
})
const send: SendOptions = { expireAfter: 1000 }
platform.messaging.send<Chat>('chat.message', 'local', { text: 'hi' }, send)

const custom = new API({ platform, protocol: 'xx', encode: (s: string) => Buffer.from(s), decode: (b: Uint8Array) => Buffer.from(b).toString() })
custom.on<string>('self.*', (_t, _s, payload) => console.log('custom ' + payload.toUpperCase()))
custom.send('x', 'local', 'abc')

async function main(): Promise<void> {
  await platform.ready()
  const info: NodeInfo = platform.directory.getMyNodeInfo()
  const scope: Scope = messages[0]?.scope ?? 'self'
  const err: MMError = new InvalidArgumentError('x')
  const code: ErrorCode = err.code
  const isDelivery: boolean = err instanceof DeliveryError
  const api: API = platform.torrenting
  console.log('info ' + (info.signId === platform.identity.getSignId()) + ' ' + scope + ' ' + code + ' ' + isDelivery + ' ' + api.protocol + ' ' + messages.filter((m) => m.topic !== 'transports.myNodeInfo').length)
  await platform.close()
  console.log('closed')
}
// These must stay type errors: unused expectations fail the check, so the consumers are really checked.
// @ts-expect-error a sender is a string
const wrongMessage: Message = { sender: 1, protocol: 'ms', topic: 't', scope: 'self', payload: 1 }
if (platform.isReady()) {
  // @ts-expect-error a typed payload is checked at the send (never run: not ready yet here)
  platform.messaging.send<Chat>('chat.message', 'local', { text: 42 })
}
void wrongMessage

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
`

const NAMED = 'API, MemoryStore, InvalidArgumentError, DeliveryError, MMError, silentLogger'
const TYPES = 'Message, NodeInfo, PlatformOptions, SendOptions, Scope, Logger, ErrorCode'

const EXPECTED_OUTPUT = ['typed hi', 'untyped hi', 'custom ABC', 'info true self ERR_INVALID_ARGUMENT false bt 2', 'closed']

test('the packed tarball installs and works: require, import, and TypeScript in CommonJS, ESM and bundler projects', async (t) => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-platform-pack-'))
  t.after(() => fs.rmSync(scratch, { recursive: true, force: true }))

  // A fresh clone: the tracked files only, no dist. `npm pack` must build it (prepare).
  const clone = path.join(scratch, 'clone')
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean)
  for (const file of tracked) {
    if (!fs.existsSync(path.join(ROOT, file))) continue // deleted in the working tree
    fs.mkdirSync(path.join(clone, path.dirname(file)), { recursive: true })
    fs.copyFileSync(path.join(ROOT, file), path.join(clone, file))
  }
  assert.equal(fs.existsSync(path.join(clone, 'dist')), false)
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir')
  const packStarted = Date.now()
  const packOutput = npm(['pack', '--json', '--pack-destination', scratch], clone)
  // The build's own output comes first; the JSON report starts at the line that opens it.
  const packed = JSON.parse(packOutput.slice(packOutput.search(/^\[/m))) as Array<{ filename: string; files: Array<{ path: string }> }>
  const packMs = Date.now() - packStarted
  const files = packed[0]?.files.map((f) => f.path) ?? []
  for (const needed of ['dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/cjs/entry.cjs', 'dist/cjs/entry.d.cts', 'dist/cjs/index.d.ts', 'bin/mm-platform.js', 'README.md', 'package.json']) {
    assert.ok(files.includes(needed), `the tarball has ${needed} (it has ${files.length} files)`)
  }
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'no sources or tests in the tarball')
  const tarball = path.join(scratch, packed[0]?.filename ?? '')

  // The user's project: installs the tarball; its dependencies come from the npm cache.
  const app = path.join(scratch, 'app')
  write(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }) + '\n')
  const installStarted = Date.now()
  npm(['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app)
  const installMs = Date.now() - installStarted
  t.diagnostic(`npm pack (with build) ${packMs} ms, npm install of the tarball ${installMs} ms`)

  // Plain JavaScript, both module systems.
  write(
    path.join(app, 'plain.cjs'),
    `const Platform = require('mm-platform')
const { MemoryStore, API, MMError } = require('mm-platform')
const p = new Platform({ storage: new MemoryStore(), tcp: false, udp: false })
p.messaging.on('self.t', (topic, sender, payload) => console.log(topic, sender, payload.n))
p.messaging.send('t', 'local', { n: 1 })
p.ready().then(() => p.close()).then(() => console.log(Platform.default === Platform, Platform.Platform === Platform, typeof API, typeof MMError))
`
  )
  write(
    path.join(app, 'plain.mjs'),
    `import Platform, { MemoryStore, Platform as Named, API } from 'mm-platform'
const p = new Platform({ storage: new MemoryStore(), tcp: false, udp: false })
p.messaging.on('self.t', (topic, sender, payload) => console.log(topic, sender, payload.n))
p.messaging.send('t', 'local', { n: 1 })
await p.ready()
await p.close()
console.log(Named === Platform, typeof API)
`
  )
  const cjs = await runNode(path.join(app, 'plain.cjs'), { cwd: app })
  assert.equal(cjs.code, 0, cjs.stderr)
  assert.equal(cjs.stdout, 'self.t local 1\ntrue true function function\n')
  const esm = await runNode(path.join(app, 'plain.mjs'), { cwd: app })
  assert.equal(esm.code, 0, esm.stderr)
  assert.equal(esm.stdout, 'self.t local 1\ntrue function\n')

  // TypeScript consumers. @types/node comes from the repo (TypeScript 6 needs it named in `types`).
  const typeRoots = [path.join(ROOT, 'node_modules', '@types')]
  const base = { strict: true, skipLibCheck: false, types: ['node'], typeRoots, target: 'ES2022', esModuleInterop: true }
  const consumers = [
    {
      name: 'ts-cjs',
      type: 'commonjs',
      compilerOptions: { ...base, module: 'NodeNext', moduleResolution: 'NodeNext', outDir: 'out' },
      file: 'index.ts',
      source:
        `import Platform = require('mm-platform')\nimport { ${NAMED} } from 'mm-platform'\nimport type { ${TYPES} } from 'mm-platform'\n` +
        // The types are on the class's namespace too, and .default is the class again.
        `const viaNamespace: Platform.Scope = 'self'\nconst Again: typeof Platform.Platform = Platform.default\nvoid viaNamespace\nvoid Again\n` +
        TS_BODY,
      run: 'out/index.js'
    },
    {
      name: 'ts-esm',
      type: 'module',
      // The shipped declarations themselves are checked once, by the CommonJS consumer above (it
      // reads the same .d.ts files, plus entry.d.cts); here only their use is.
      compilerOptions: { ...base, skipLibCheck: true, module: 'NodeNext', moduleResolution: 'NodeNext', outDir: 'out' },
      file: 'index.ts',
      source: `import Platform, { ${NAMED} } from 'mm-platform'\nimport type { ${TYPES} } from 'mm-platform'\n` + TS_BODY,
      run: 'out/index.js'
    },
    {
      name: 'ts-bundler',
      type: 'module',
      compilerOptions: { ...base, skipLibCheck: true, module: 'ESNext', moduleResolution: 'bundler', noEmit: true },
      file: 'index.ts',
      source: `import Platform, { ${NAMED} } from 'mm-platform'\nimport type { ${TYPES} } from 'mm-platform'\n` + TS_BODY,
      run: undefined
    }
  ]
  for (const c of consumers) {
    const dir = path.join(app, c.name)
    write(path.join(dir, 'package.json'), JSON.stringify({ name: c.name, private: true, type: c.type }) + '\n')
    write(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: c.compilerOptions, files: [c.file] }, null, 2))
    write(path.join(dir, c.file), c.source)
  }
  // Checked side by side (each run checks all of @types/node: the slow part of this test).
  const tscStarted = Date.now()
  await Promise.all(consumers.map((c) => tsc(path.join(app, c.name))))
  t.diagnostic(`tsc on the three consumers ${Date.now() - tscStarted} ms`)
  for (const c of consumers) {
    if (c.run === undefined) continue
    const r = await runNode(path.join(app, c.name, c.run), { cwd: path.join(app, c.name) })
    assert.equal(r.code, 0, `${c.name}: ${r.stderr}`)
    assert.deepEqual(r.stdout.trim().split('\n'), EXPECTED_OUTPUT, c.name)
  }
})
