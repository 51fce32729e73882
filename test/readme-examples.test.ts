/**
 * The seed README's examples, copied as a user writes them, run as child processes in both
 * module systems against the built package (`require('mm-platform')` / `import 'mm-platform'`).
 * Each child gets its own data directory in MM_PLATFORM_DATA (the default store's location).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { FIXTURES, runNode, tempDir, listTree, type RunResult } from './helpers/index.js'
import { checkNodeInfo } from '../src/index.js'

const SYSTEMS = ['cjs', 'mjs'] as const

async function run(name: string, system: string, env: Record<string, string> = {}, cwd?: string): Promise<RunResult> {
  const r = await runNode(path.join(FIXTURES, `${name}.${system}`), { env, cwd, timeoutMs: 30_000 })
  assert.equal(r.timedOut, false, `${name}.${system} did not finish; stderr: ${r.stderr}`)
  return r
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.length > 0)
}

function tagged(stdout: string, tag: string): string[] {
  return lines(stdout)
    .filter((l) => l.startsWith(tag + ' '))
    .map((l) => l.slice(tag.length + 1))
}

const OTHER_SIGN_ID = Buffer.alloc(32, 7).toString('base64')

test('the package: require() is the Platform class, .default is the same class, named exports in both systems', async (t) => {
  for (const system of SYSTEMS) {
    const r = await run('exports', system, { MM_PLATFORM_DATA: tempDir(t) })
    assert.equal(r.code, 0, r.stderr)
    const got = JSON.parse(r.stdout) as Record<string, unknown>
    assert.equal(got.isFunction, true, system)
    assert.equal(got.name, 'Platform', system)
    assert.equal(got.defaultIsSame, true, `${system}: .default is the Platform class`)
    assert.equal(got.namedPlatformIsSame, true, system)
    assert.equal(got.instance, true, system)
    assert.equal(got.errorsAreErrors, true, system)
    for (const [name, type] of Object.entries(got.named as Record<string, string>)) assert.equal(type, 'function', `${system}: export ${name}`)
  }
})

for (const system of SYSTEMS) {
  test(`README 'ms' example (${system}): self.test.testMessage from 'local' with the dictionary`, async (t) => {
    const r = await run('readme-ms', system, { MM_PLATFORM_DATA: tempDir(t) })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(lines(r.stdout), ['self.test.testMessage', 'local', "{ test: 'Test String' }", 'closed'])
    assert.equal(r.stderr, '')
  })

  test(`README myNodeInfo example (${system}): published on ready with boxId, signId, connectionInfo`, async (t) => {
    const r = await run('readme-my-node-info', system, { MM_PLATFORM_DATA: tempDir(t) })
    assert.equal(r.code, 0, r.stderr)
    const out = lines(r.stdout)
    assert.equal(out[0], 'self.transports.myNodeInfo')
    assert.equal(out[1], 'local')
    assert.match(r.stdout, /boxId: '/)
    assert.match(r.stdout, /connectionInfo: \[/)
    const published = tagged(r.stdout, 'JSON')
    assert.equal(published.length, 1, 'published once on ready')
    const nodeInfo: unknown = JSON.parse(published[0] ?? 'null')
    const checked = checkNodeInfo(nodeInfo)
    assert.ok('nodeInfo' in checked, `a valid nodeInfo: ${JSON.stringify(checked)}`)
    assert.equal(checked.nodeInfo.signId, tagged(r.stdout, 'SIGNID')[0], 'it is our own nodeInfo')
    assert.ok(Array.isArray(checked.nodeInfo.connectionInfo))
    assert.equal(out.at(-1), 'closed')
  })

  test(`README requestNodeInfo example as written (${system}): its ReferenceError is reported, not fatal`, async (t) => {
    const r = await run('readme-request-node-info', system, { MM_PLATFORM_DATA: tempDir(t) })
    assert.equal(r.code, 0, `the process must not crash; stderr: ${r.stderr}`)
    const out = lines(r.stdout)
    assert.deepEqual(out.slice(0, 2), ['self.transports.requestNodeInfo', 'local'], 'the handler ran up to the bad line')
    assert.ok(out.includes('still running'))
    assert.ok(out.includes('LOOKUP ERR_CLOSED'), 'close() failed the pending lookup')
    assert.equal(out.at(-1), 'closed')
    // No 'handlerError' listener: the error surfaces as a process warning on stderr.
    assert.match(r.stderr, /HandlerError: handler for 'self\.transports\.requestNodeInfo' threw: nodeInfo is not defined/)

    const withListener = await run('readme-request-node-info', system, { MM_PLATFORM_DATA: tempDir(t), MM_TEST_LISTENER: '1' })
    assert.equal(withListener.code, 0, withListener.stderr)
    const reported = tagged(withListener.stdout, 'HANDLERERROR').map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.deepEqual(reported, [
      { name: 'HandlerError', code: 'ERR_HANDLER_THREW', topic: 'self.transports.requestNodeInfo', causeName: 'ReferenceError', causeMessage: 'nodeInfo is not defined' }
    ])
    assert.doesNotMatch(withListener.stderr, /HandlerError/, 'a listener takes the report: no warning')
  })

  test(`README requestNodeInfo example corrected (${system}): the handler prints the signId asked for`, async (t) => {
    const r = await run('readme-request-node-info-fixed', system, { MM_PLATFORM_DATA: tempDir(t) })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(lines(r.stdout), ['self.transports.requestNodeInfo', 'local', OTHER_SIGN_ID, 'LOOKUP ERR_CLOSED', 'closed'])
  })

  test(`README directory.get example as written (${system}): its ReferenceError is reported, not fatal`, async (t) => {
    const r = await run('readme-directory-get', system, { MM_PLATFORM_DATA: tempDir(t) })
    assert.equal(r.code, 0, `the process must not crash; stderr: ${r.stderr}`)
    const out = lines(r.stdout)
    assert.ok(out.includes('still running'))
    assert.ok(out.includes('GET ERR_CLOSED'), 'no reply came; close() failed the lookup')
    assert.equal(out.at(-1), 'closed')
    assert.match(r.stderr, /HandlerError: handler for 'self\.directory\.get' threw: signId is not defined/)

    const withListener = await run('readme-directory-get', system, { MM_PLATFORM_DATA: tempDir(t), MM_TEST_LISTENER: '1' })
    assert.equal(withListener.code, 0, withListener.stderr)
    const reported = tagged(withListener.stdout, 'HANDLERERROR').map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.deepEqual(reported, [
      { name: 'HandlerError', code: 'ERR_HANDLER_THREW', topic: 'self.directory.get', causeName: 'ReferenceError', causeMessage: 'signId is not defined' }
    ])
  })

  test(`README directory.get example corrected (${system}): its getReply resolves directory.get(key)`, async (t) => {
    const r = await run('readme-directory-get-fixed', system, { MM_PLATFORM_DATA: tempDir(t) })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(lines(r.stdout), ['GET resolved NeedToImplement', 'closed'])
  })

  test(`README transports.nodeInfo example (${system}): identity known synchronously, nodeInfo cached`, async (t) => {
    const dataDir = tempDir(t)
    const first = await run('readme-node-info', system, { MM_PLATFORM_DATA: dataDir })
    assert.equal(first.code, 0, first.stderr)
    const sent = JSON.parse(tagged(first.stdout, 'SENT')[0] ?? 'null') as { signId: string; boxId: string; connectionInfo: unknown }
    const checked = checkNodeInfo(sent)
    assert.ok('nodeInfo' in checked, 'the synchronously read identity gives a valid nodeInfo')
    assert.deepEqual(JSON.parse(tagged(first.stdout, 'CACHED')[0] ?? 'null'), sent, 'cached at once by the directory')
    assert.deepEqual(tagged(first.stdout, 'READY'), [sent.signId], 'the keys made at construction are the ones kept')
    assert.deepEqual(JSON.parse(tagged(first.stdout, 'LOOKUP')[0] ?? 'null'), sent, 'getNodeInfo answers from the cache')
    // The key was written to the identity file beside the database, and read back synchronously.
    assert.ok(fs.existsSync(path.join(dataDir, 'identity')))
    const second = await run('readme-node-info', system, { MM_PLATFORM_DATA: dataDir })
    assert.equal(second.code, 0, second.stderr)
    const again = JSON.parse(tagged(second.stdout, 'SENT')[0] ?? 'null') as { signId: string }
    assert.equal(again.signId, sent.signId, 'a second run reads the same identity synchronously')
  })

  test(`README low-level example (${system}): platform.on('message') gets topic, sender, scope, protocol, payload`, async (t) => {
    const r = await run('readme-low-level', system, { MM_PLATFORM_DATA: tempDir(t) })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(lines(r.stdout).slice(0, 5), ['test', 'local', 'self', 'ms', 'test'])
    assert.equal(lines(r.stdout).at(-1), 'closed')
  })

  test(`README kad-fs line (${system}): ready on a real kad-fs store, identity persists across runs`, async (t) => {
    const cwd = tempDir(t)
    fs.mkdirSync(path.join(cwd, 'data'))
    const env = { MM_PLATFORM_DATA: path.join(cwd, 'unused-default-dir') }
    const first = await run('readme-kad-fs', system, env, cwd)
    assert.equal(first.code, 0, first.stderr)
    const second = await run('readme-kad-fs', system, env, cwd)
    assert.equal(second.code, 0, second.stderr)
    const a = tagged(first.stdout, 'READY')
    const b = tagged(second.stdout, 'READY')
    assert.equal(a.length, 1)
    assert.match(a[0] ?? '', /^[A-Za-z0-9+/]{43}=$/)
    assert.deepEqual(b, a, 'same signId on the second run')
    // Everything went to the kad-fs directory, as flat files; the default store was not used.
    const tree = listTree(path.join(cwd, 'data'))
    assert.ok(tree.includes('platform/identity'), tree.join(', '))
    assert.ok(tree.every((p) => p === 'platform/' || /^platform\/[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(p)), tree.join(', '))
    assert.equal(fs.existsSync(env.MM_PLATFORM_DATA), false)
  })
}
