/**
 * The `mm-platform` command: id, start (stopped by SIGINT), and usage errors (exit 2).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { CLI, runNode, spawnNode, tempDir, waitForExit, waitForOutput } from './helpers/index.js'
import { Platform, isId } from '../src/index.js'

const ID_LINE = /^signId {2}(\S+)$/m
const BOX_LINE = /^boxId {3}(\S+)$/m

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runNode(CLI, { args, env, timeoutMs: 20_000 })
  assert.equal(r.timedOut, false, `mm-platform ${args.join(' ')} did not finish`)
  return r
}

test('id prints signId and boxId, the same on a second run', async (t) => {
  const dataDir = tempDir(t)
  const first = await cli(['id', '--data-dir', dataDir])
  assert.equal(first.code, 0, first.stderr)
  const signId = first.stdout.match(ID_LINE)?.[1]
  const boxId = first.stdout.match(BOX_LINE)?.[1]
  assert.ok(isId(signId), first.stdout)
  assert.ok(isId(boxId), first.stdout)
  const second = await cli(['id', '--data-dir', dataDir])
  assert.equal(second.code, 0, second.stderr)
  assert.equal(second.stdout.match(ID_LINE)?.[1], signId)
  assert.equal(second.stdout.match(BOX_LINE)?.[1], boxId)
  // It is the identity a Platform on that directory has.
  const platform = new Platform({ dataDir, tcp: false })
  await platform.ready()
  assert.equal(platform.identity.getSignId(), signId)
  // And id still answers while a node holds the directory.
  const busy = await cli(['id', '--data-dir', dataDir])
  assert.equal(busy.code, 0, busy.stderr)
  assert.equal(busy.stdout.match(ID_LINE)?.[1], signId)
  await platform.close()
})

test('id uses $MM_PLATFORM_DATA when no --data-dir is given', async (t) => {
  const dataDir = tempDir(t)
  const a = await cli(['id'], { MM_PLATFORM_DATA: dataDir })
  const b = await cli(['id', '--data-dir', dataDir])
  assert.equal(a.code, 0, a.stderr)
  assert.equal(a.stdout.match(ID_LINE)?.[1], b.stdout.match(ID_LINE)?.[1])
})

test('usage errors exit 2 with a message on stderr', async (t) => {
  const env = { MM_PLATFORM_DATA: tempDir(t) }
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command: frobnicate/],
    [['frobnicate', 'now'], /unknown command: frobnicate/],
    [[], /a command is needed/],
    [['id', '--bogus'], /bogus/],
    [['start', '--log-level', 'loud'], /--log-level must be debug, info or warn/],
    [['id', 'extra'], /unexpected argument: extra/],
    [['id', '--data-dir', ''], /--data-dir must not be empty/]
  ]
  for (const [args, message] of cases) {
    const r = await cli(args, env)
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, message)
    assert.match(r.stderr, /usage: mm-platform/)
    assert.equal(r.stdout, '')
  }
  const help = await cli(['--help'], env)
  assert.equal(help.code, 0)
  assert.match(help.stdout, /usage: mm-platform/)
})

test('start prints the signId, and on SIGINT prints stopped and exits 0', async (t) => {
  const dataDir = tempDir(t)
  const child = spawnNode(CLI, { args: ['start', '--data-dir', dataDir, '--log-level', 'warn', '--no-mdns'] })
  t.after(() => void child.kill('SIGKILL'))
  let stdout = ''
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()))
  const [, signId] = await waitForOutput(child, ID_LINE, 20_000)
  assert.ok(isId(signId))
  const exited = waitForExit(child, 15_000)
  child.kill('SIGINT')
  const { code, signal } = await exited
  assert.equal(signal, null)
  assert.equal(code, 0)
  assert.match(stdout, /^stopped$/m)
  // The identity the node ran with is the one `id` reports, and the directory is free again.
  const id = await cli(['id', '--data-dir', dataDir])
  assert.equal(id.stdout.match(ID_LINE)?.[1], signId)
  assert.doesNotMatch(id.stdout, /in use/)
})

test('id on a data directory in use by a running node prints the ids and nothing on stderr', async (t) => {
  const dataDir = tempDir(t)
  const running = new Platform({ dataDir, tcp: false, udp: false })
  t.after(() => running.close())
  await running.ready()
  const r = await cli(['id', '--data-dir', dataDir])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.match(ID_LINE)?.[1], running.identity.getSignId())
  assert.equal(r.stdout.match(BOX_LINE)?.[1], running.identity.getBoxId())
  assert.match(r.stdout, /in use by a running node/)
  assert.equal(r.stderr, '', 'no stray ERR_STORAGE_LOCKED warning')
})

test('id on a directory in use whose identity file is gone prints no made-up id: it reports the lock', async (t) => {
  const dataDir = tempDir(t)
  const running = new Platform({ dataDir, tcp: false, udp: false })
  t.after(() => running.close())
  await running.ready()
  fs.rmSync(path.join(dataDir, 'identity'))
  const r = await cli(['id', '--data-dir', dataDir])
  assert.equal(r.code, 1, r.stdout)
  assert.doesNotMatch(r.stdout, ID_LINE)
  assert.match(r.stderr, /in use by another process.*\[ERR_STORAGE_LOCKED\]/)
})
