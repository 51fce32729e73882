/**
 * The command line against a running node, through its control socket: nodeinfo, add, peers,
 * send (exit code says delivered or not), sub (until Ctrl-C), --json lines, and the errors a
 * person meets (no node running, a bad nodeInfo, a payload that is not JSON).
 * The node runs with --no-mdns: a test must not multicast on the host's network.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { CLI, runNode, spawnNode, tempDir, waitForExit, waitForOutput } from './helpers/index.js'
import { checkNodeInfo, type NodeInfo } from '../src/index.js'
import { fakeNode, loopbackPlatform } from './helpers/discovery.js'

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runNode(CLI, { args, timeoutMs: 30_000 })
  assert.equal(r.timedOut, false, `mm-platform ${args.join(' ')} did not finish`)
  return r
}

async function runningNode(t: import('node:test').TestContext): Promise<{ dataDir: string; child: ChildProcess; signId: string }> {
  const dataDir = tempDir(t)
  const child = spawnNode(CLI, { args: ['start', '--data-dir', dataDir, '--log-level', 'warn', '--no-mdns'] })
  t.after(() => void child.kill('SIGKILL'))
  const [, signId] = await waitForOutput(child, /^signId {2}(\S+)$/m, 30_000)
  await waitForOutput(child, /^Press Ctrl-C/m, 30_000).catch(() => {}) // printed in the same write, usually
  return { dataDir, child, signId: signId as string }
}

test('nodeinfo, add, send, peers and sub against a running node; the control socket is owner-only', async (t) => {
  const node = await runningNode(t)
  const d = ['--data-dir', node.dataDir]
  const socket = path.join(node.dataDir, 'control.sock')
  const st = fs.statSync(socket)
  assert.ok(st.isSocket())
  assert.equal(st.mode & 0o777, 0o600)

  // nodeinfo: the node's signed nodeInfo, one line, the same with --json.
  const ni = await cli(['nodeinfo', ...d])
  assert.equal(ni.code, 0, ni.stderr)
  const mine = JSON.parse(ni.stdout) as NodeInfo
  assert.equal(mine.signId, node.signId)
  const checked = checkNodeInfo(mine)
  assert.ok('nodeInfo' in checked && checked.nodeInfo.signature, 'signed and valid')
  assert.deepEqual(JSON.parse((await cli(['nodeinfo', '--json', ...d])).stdout), mine)

  // add: a peer's nodeInfo by hand; then send reaches it, and peers lists it as connected.
  const peer = await loopbackPlatform()
  t.after(() => peer.close())
  peer.messaging.send('transports.nodeInfo', 'local', mine) // the other person adds ours too
  const added = await cli(['add', JSON.stringify(peer.directory.getMyNodeInfo?.()), ...d])
  assert.equal(added.code, 0, added.stderr)
  assert.match(added.stdout, new RegExp(`added ${peer.identity.getSignId().replace(/[+/=]/g, '\\$&')}`))
  const got = new Promise((resolve) => peer.messaging.once('public.chat.msg', (_t, s, p) => resolve([s, p])))
  const sent = await cli(['send', peer.identity.getSignId(), 'chat.msg', '{"text":"hi"}', ...d])
  assert.equal(sent.code, 0, sent.stderr)
  assert.match(sent.stdout, /^delivered to /)
  assert.deepEqual(await got, [node.signId, { text: 'hi' }])
  const peers = await cli(['peers', '--json', ...d])
  assert.equal(peers.code, 0, peers.stderr)
  const list = peers.stdout.trim().split('\n').map((l) => JSON.parse(l) as { signId: string; connected: boolean })
  assert.ok(list.some((p) => p.signId === peer.identity.getSignId() && p.connected), peers.stdout)
  assert.match((await cli(['peers', ...d])).stdout, /connected/)

  // send to a node no one knows: not delivered, exit 1, the reason on stderr.
  const lost = await cli(['send', fakeNode().signId, 'x', '1', '--timeout', '1500', ...d])
  assert.equal(lost.code, 1)
  assert.match(lost.stderr, /mm-platform: .+/)
  const lostJson = await cli(['send', fakeNode().signId, 'x', '1', '--timeout', '1500', '--json', ...d])
  assert.equal(lostJson.code, 1)
  assert.equal((JSON.parse(lostJson.stdout) as { ok: boolean }).ok, false)

  // sub: prints what arrives (local sends and remote ones) until Ctrl-C, then exits 0.
  const sub = spawnNode(CLI, { args: ['sub', '*.notes.*', ...d] })
  t.after(() => void sub.kill('SIGKILL'))
  let subOut = ''
  sub.stdout?.on('data', (b: Buffer) => (subOut += b.toString()))
  let subErr = ''
  sub.stderr?.on('data', (b: Buffer) => (subErr += b.toString()))
  const until = async (cond: () => boolean): Promise<void> => {
    for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25))
  }
  await until(() => /listening on/.test(subErr))
  assert.match(subErr, /listening on \*\.notes\.\*/)
  assert.equal((await cli(['send', 'local', 'notes.a', '{"n":1}', ...d])).code, 0)
  peer.messaging.send('notes.b', node.signId, [2], { realtime: true })
  await until(() => subOut.split('\n').length >= 3)
  assert.match(subOut, /^self\.notes\.a {2}local {2}\{"n":1\}$/m)
  assert.match(subOut, new RegExp(`^public\\.notes\\.b  ${peer.identity.getSignId().replace(/[+/=]/g, '\\$&')}  \\[2\\]$`, 'm'))
  const exited = waitForExit(sub, 10_000)
  sub.kill('SIGINT')
  assert.equal((await exited).code, 0)
})

test('errors a person meets: no node running, a bad nodeInfo, a payload that is not JSON, unknown commands', async (t) => {
  const empty = tempDir(t)
  const none = await cli(['peers', '--data-dir', empty])
  assert.equal(none.code, 1)
  assert.match(none.stderr, /no running node found in/)
  const node = await runningNode(t)
  const d = ['--data-dir', node.dataDir]
  const forged = { ...fakeNode().nodeInfo(), signature: fakeNode().nodeInfo().signature }
  const bad = await cli(['add', JSON.stringify(forged), ...d])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /not a usable nodeInfo: the nodeInfo signature does not verify/)
  const notJson = await cli(['add', '{nope', ...d])
  assert.equal(notJson.code, 2)
  assert.match(notJson.stderr, /add takes a nodeInfo as JSON text/)
  const payload = await cli(['send', 'local', 'x', 'not json', ...d])
  assert.equal(payload.code, 2)
  assert.match(payload.stderr, /payload must be JSON/)
  const arity = await cli(['send', 'local', 'x', ...d])
  assert.equal(arity.code, 2)
  assert.match(arity.stderr, /send takes 3 arguments, not 2/)
  const unknown = await cli(['subscribe', 'x', ...d])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /unknown command: subscribe/)
})
