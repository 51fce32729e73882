/**
 * Attacks on a node's local trust, each against a real node in a child process (issue 8, items
 * 5 and 6): a remote node in our devices circle (so scoped `self`) sends the control topics
 * (`friends.update`, `devices.update`, `transports.nodeInfo`, `directory.getReply`,
 * `transports.requestMyNodeInfo`), and signed nodeInfo dated years ahead or long ago, and unsigned
 * nodeInfo pointing a friend's signId at the attacker. For each: the victim stays up, its circles
 * and directory are unchanged, the refusal is counted in `platform.stats()`, and a legitimate
 * friend still exchanges messages with it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Directory, MemoryStore, Platform, nodeInfoSigningBytes, type IdentityLike, type NodeInfo } from '../src/index.js'
import { tempDir } from './helpers/index.js'
import { PeerProcess, type PeerEvent } from './helpers/peer.js'

const YEAR_MS = 365 * 24 * 3600_000

async function node(t: import('node:test').TestContext): Promise<Platform> {
  const p = new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1', port: 0 }, udp: false, connections: { timings: { reconnectMinMs: 50, reconnectMaxMs: 500 } } })
  t.after(() => p.close())
  await p.ready()
  return p
}

function myNodeInfo(p: Platform): NodeInfo {
  return (p.directory as Directory).getMyNodeInfo()
}

/** `info` signed by `identity` with the given timestamp (the attacker signs its own records). */
function signedAt(identity: IdentityLike, info: NodeInfo, timestamp: number): NodeInfo {
  const unsigned = { signId: info.signId, boxId: info.boxId, connectionInfo: info.connectionInfo }
  return { ...unsigned, timestamp, signature: identity.sign(nodeInfoSigningBytes({ ...unsigned, timestamp })).toString('base64') }
}

/** Sends on `from` to `to` and resolves once the victim's platform acknowledged it. */
function sendAcked(from: Platform, to: string, topic: string, payload: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    from.messaging.send(topic, to, payload, { callback: (err) => (err ? reject(err) : resolve()) })
  })
}

interface Scene {
  victim: PeerProcess
  attacker: Platform
  friend: Platform
}

/** A victim child process with `friend` in its friends circle and `attacker` in its devices circle. */
async function scene(t: import('node:test').TestContext, env: Record<string, string> = {}): Promise<Scene> {
  const [attacker, friend] = await Promise.all([node(t), node(t)])
  const victim = await PeerProcess.start(tempDir(t), {
    UDP: '0',
    FRIENDS: JSON.stringify([friend.identity.getSignId()]),
    DEVICES: JSON.stringify([attacker.identity.getSignId()]),
    ...env
  })
  t.after(() => victim.close())
  for (const p of [attacker, friend]) {
    p.messaging.send('transports.nodeInfo', 'local', victim.nodeInfo)
    victim.directory.set(p.identity.getSignId(), myNodeInfo(p))
    victim.child.send({ cmd: 'nodeInfo', nodeInfo: myNodeInfo(p) })
  }
  return { victim, attacker, friend }
}

/** The friend and the victim exchange one message each way. */
async function friendGetsThrough(s: Scene, tag: string): Promise<void> {
  const victimId = s.victim.signId
  await sendAcked(s.friend, victimId, 'chat.hello', { tag })
  const atVictim = await s.victim.waitFor((e) => e.event === 'message' && e.topic === 'chat.hello' && JSON.parse(e.payload as string).tag === tag, 20_000, true)
  assert.equal(atVictim.scope, 'friends')
  const reply = new Promise<unknown>((resolve) => {
    const handler = (_topic: string, sender: string, payload: unknown): void => {
      if (sender === victimId && (payload as { tag?: string }).tag === tag) {
        s.friend.messaging.off('public.chat.reply', handler)
        resolve(payload)
      }
    }
    s.friend.messaging.on('public.chat.reply', handler)
  })
  const id = s.victim.send(s.friend.identity.getSignId(), 'chat.reply', { tag })
  const sent = await s.victim.waitFor((e) => e.event === 'sent' && e.id === id, 20_000, true)
  assert.equal(sent.error, null, 'the victim reaches its friend')
  assert.deepEqual(await reply, { tag })
}

function stats(state: PeerEvent): { controlDrops: Record<string, number>; nodeInfoRefused: Record<string, number> } {
  return state.stats as { controlDrops: Record<string, number>; nodeInfoRefused: Record<string, number> }
}

test('a remote node in our devices circle cannot change our circles or directory (control topics are local only)', { timeout: 90_000 }, async (t) => {
  const s = await scene(t)
  const { victim, attacker, friend } = s
  const ids = [attacker.identity.getSignId(), friend.identity.getSignId()]
  await friendGetsThrough(s, 'before')
  const before = await victim.state(ids)
  assert.deepEqual(before.friends, [friend.identity.getSignId()])
  assert.deepEqual(before.devices, [attacker.identity.getSignId()])

  // The attacker (scoped `self` at the victim) rewrites the circles and points the friend's signId
  // at itself: an unsigned nodeInfo, and its own record dated a year ahead.
  const hijack = { ...myNodeInfo(friend), connectionInfo: myNodeInfo(attacker).connectionInfo, timestamp: undefined, signature: undefined }
  const attacks: Array<[string, unknown]> = [
    ['friends.update', [attacker.identity.getSignId()]],
    ['devices.update', []],
    ['transports.nodeInfo', hijack],
    ['transports.nodeInfo', signedAt(attacker.identity, myNodeInfo(attacker), Date.now() + 10 * YEAR_MS)],
    ['transports.requestMyNodeInfo', null],
    ['directory.getReply', { key: 'k', value: 'v' }]
  ]
  const sentBytes = JSON.stringify(attacks).length
  for (const [topic, payload] of attacks) await sendAcked(attacker, victim.signId, topic, payload)
  await friendGetsThrough(s, 'during')

  const after = await victim.state(ids)
  assert.equal(victim.child.exitCode, null, 'the victim is up')
  assert.deepEqual(after.friends, before.friends, 'friends circle unchanged')
  assert.deepEqual(after.devices, before.devices, 'devices circle unchanged')
  assert.deepEqual(after.cached, before.cached, 'directory unchanged')
  assert.deepEqual(stats(after).controlDrops, {
    'friends.update': 1,
    'devices.update': 1,
    'transports.nodeInfo': 2,
    'transports.requestMyNodeInfo': 1,
    'directory.getReply': 1
  })
  assert.equal(victim.messages().filter((e) => e.sender === attacker.identity.getSignId()).length, 0, 'no control message reached a listener')
  await friendGetsThrough(s, 'after')
  t.diagnostic(`6 control messages (${sentBytes} bytes of payload) from a device; victim RSS ${((after.rss as number) / 2 ** 20).toFixed(1)} MiB; friend got through: yes; counted ${JSON.stringify(stats(after).controlDrops)}`)
})

test('with controlFromDevices, a device still cannot plant future-dated, stale or unsigned nodeInfo', { timeout: 90_000 }, async (t) => {
  const s = await scene(t, { CONTROL_FROM_DEVICES: '1' })
  const { victim, attacker, friend } = s
  const ids = [attacker.identity.getSignId(), friend.identity.getSignId()]
  await friendGetsThrough(s, 'before')
  const before = await victim.state(ids)
  assert.ok((before.cached as Record<string, NodeInfo | null>)[attacker.identity.getSignId()]?.signature, "the attacker's real (signed) record is cached")

  const mine = myNodeInfo(attacker)
  const elsewhere = { ...mine, connectionInfo: [{ transportType: 'tcp', transportInfo: { host: '127.0.0.1', port: 9 } }] }
  const hijack = { ...myNodeInfo(friend), connectionInfo: elsewhere.connectionInfo, timestamp: undefined, signature: undefined }
  const { timestamp: _ts, signature: _sig, ...unsignedMine } = elsewhere
  const attacks: Array<[string, unknown]> = [
    // Dated ten years ahead: would block the attacker's real updates forever (issue 8, item 5).
    ['future-dated', signedAt(attacker.identity, elsewhere, Date.now() + 10 * YEAR_MS)],
    // Signed two days ago: older than NODE_INFO_MAX_AGE_MS.
    ['too-old', signedAt(attacker.identity, elsewhere, Date.now() - 2 * 24 * 3600_000)],
    // The friend's signId pointed at another address, unsigned.
    ['unsigned-remote', hijack],
    ['unsigned-remote', unsignedMine]
  ]
  for (const [, payload] of attacks) await sendAcked(attacker, victim.signId, 'transports.nodeInfo', payload)
  await friendGetsThrough(s, 'during')

  const after = await victim.state(ids)
  assert.equal(victim.child.exitCode, null, 'the victim is up')
  assert.deepEqual(after.cached, before.cached, 'directory unchanged')
  assert.deepEqual(after.friends, before.friends)
  const refused = stats(after).nodeInfoRefused
  assert.equal(refused['future-dated'], 1)
  assert.equal(refused['too-old'], 1)
  assert.equal(refused['unsigned-remote'], 2)
  assert.deepEqual(stats(after).controlDrops, {}, 'the option let the device through to the directory, which refused')

  // The device may still publish a genuine, current record of its own: the option works.
  const fresh = signedAt(attacker.identity, elsewhere, Date.now())
  await sendAcked(attacker, victim.signId, 'transports.nodeInfo', fresh)
  const last = await victim.state(ids)
  assert.deepEqual((last.cached as Record<string, unknown>)[attacker.identity.getSignId()], fresh)
  await friendGetsThrough(s, 'after')
  t.diagnostic(`4 bad nodeInfo from a device with controlFromDevices; victim RSS ${((after.rss as number) / 2 ** 20).toFixed(1)} MiB; friend got through: yes; refused ${JSON.stringify(refused)}`)
})

test('nodeInfo relayed by a local discovery service: future-dated, stale and unsigned records cannot displace the real ones', { timeout: 90_000 }, async (t) => {
  // What a DHT hands our discovery service is attacker-controlled, but arrives with sender 'local'.
  const s = await scene(t)
  const { victim, attacker, friend } = s
  const ids = [attacker.identity.getSignId(), friend.identity.getSignId()]
  const before = await victim.state(ids)
  const elsewhere = [{ transportType: 'tcp', transportInfo: { host: '127.0.0.1', port: 9 } }]
  const relay = (nodeInfo: unknown): void => void victim.child.send({ cmd: 'nodeInfo', nodeInfo })
  // Its own record dated ten years ahead (would have blocked its real updates forever), one two
  // days old, and the friend's signId pointed elsewhere without a signature.
  relay(signedAt(attacker.identity, { ...myNodeInfo(attacker), connectionInfo: elsewhere }, Date.now() + 10 * YEAR_MS))
  relay(signedAt(attacker.identity, { ...myNodeInfo(attacker), connectionInfo: elsewhere }, Date.now() - 2 * 24 * 3600_000))
  relay({ ...myNodeInfo(friend), connectionInfo: elsewhere, timestamp: undefined, signature: undefined })
  const after = await victim.state(ids)
  assert.equal(victim.child.exitCode, null, 'the victim is up')
  assert.deepEqual(after.cached, before.cached, 'directory unchanged')
  const refused = stats(after).nodeInfoRefused
  assert.equal(refused['future-dated'], 1)
  assert.equal(refused['too-old'], 1)
  assert.equal(refused['unsigned-over-signed'], 1)
  // The owner's real, current update is still taken: the future-dated record blocked nothing.
  const update = signedAt(attacker.identity, { ...myNodeInfo(attacker), connectionInfo: myNodeInfo(attacker).connectionInfo }, Date.now() + 1000)
  relay(update)
  const last = await victim.state(ids)
  assert.deepEqual((last.cached as Record<string, unknown>)[attacker.identity.getSignId()], update)
  await friendGetsThrough(s, 'after')
  t.diagnostic(`3 bad nodeInfo relayed locally; victim RSS ${((after.rss as number) / 2 ** 20).toFixed(1)} MiB; friend got through: yes; refused ${JSON.stringify(refused)}`)
})
