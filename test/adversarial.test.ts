/**
 * The adversarial suite (issue 8): each attack against a real node in a child process
 * (test/fixtures/victim-process.ts). For each: the node stays up, its memory stays under the
 * budget (README, "Resource budget"), and a friend in its friends circle still connects and gets
 * its echo back during the attack. Attackers use the project's own CurveCP pieces or raw sockets.
 * Figures (traffic sent, victim's peak memory) are printed as diagnostics.
 */
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import net from 'node:net'
import { test } from 'node:test'
import { randomBytes } from 'node:crypto'
import { TcpChannel } from '../src/connections/tcp-channel.js'
import { UdpChannels } from '../src/connections/udp-channels.js'
import type { UdpChannel } from '../src/connections/udp-channel.js'
import { decodeMessage, encodeMessage } from '../src/curvecp/message-layer.js'
import { HELLO_MAGIC } from '../src/curvecp/constants.js'
import { delay, memoryIdentity } from './helpers/index.js'
import { MiB, type VictimMemory } from './helpers/victim.js'
import { durableFlood, floodSetup, floodTeardown, floodUntilClosed, type FloodSetup, friendDuring, tcpSession, tinyFrames } from './helpers/adversarial-flood.js'

/** Growth of the victim's RSS over its pre-attack figure allowed in any attack (README budget). */
const RSS_GROWTH_BUDGET = 96 * MiB

type Setup = FloodSetup
const setup = (connections: Record<string, unknown> = {}, friendTransport: 'tcp' | 'udp' = 'tcp'): Promise<Setup> => floodSetup(connections, '', friendTransport)
const teardown = floodTeardown

function report(name: string, s: Setup, after: VictimMemory, sentBytes: number, trips: number): void {
  const mb = (n: number): string => (n / MiB).toFixed(1)
  console.log(
    `# ${name}: attacker sent ${(sentBytes / 1024).toFixed(0)} KiB; victim RSS ${mb(s.before.rss)} -> peak ${mb(after.peakRss)} MiB, heap+external peak ${mb(after.peakHeap)} MiB; friend round trips ${trips}; refused ${JSON.stringify(
      Object.fromEntries(Object.entries(after.stats.refused).filter(([, v]) => v > 0))
    )}`
  )
}

function assertBudget(s: Setup, after: VictimMemory): void {
  assert.ok(s.victim.alive, 'the victim is up')
  assert.ok(after.peakRss - s.before.rss < RSS_GROWTH_BUDGET, `victim RSS grew ${((after.peakRss - s.before.rss) / MiB).toFixed(1)} MiB (budget ${RSS_GROWTH_BUDGET / MiB})`)
}

test('TCP ACK flood: a peer that sends tiny frames and never reads is disconnected; memory bounded', async (t) => {
  const s = await setup()
  t.after(() => teardown(s))
  const channel = await tcpSession(s.victim)
  // Stop reading: the victim's ACKs pile up on its side.
  ;(channel.socket as unknown as { socket: net.Socket }).socket.pause()
  let sent = 0
  const trips = await friendDuring(s, floodUntilClosed(channel, tinyFrames(2000), 15_000).then((n) => (sent = n)))
  const after = await s.victim.memory()
  report('tcp ack flood', s, after, sent, trips)
  assert.equal(channel.state, 'closed', 'the victim closed the channel of the peer that does not read')
  assert.ok((after.stats.refused.notReading ?? 0) >= 1, 'counted as notReading')
  assertBudget(s, after)
})

test('UDP ACK flood: a peer that never acknowledges our blocks is disconnected, the node does not crash', async (t) => {
  const s = await setup()
  t.after(() => teardown(s))
  const attacker = new UdpChannels({ identity: memoryIdentity() })
  t.after(() => attacker.close())
  const channel: UdpChannel = attacker.dial('127.0.0.1', s.victim.port('udp'), { remoteBoxId: s.victim.boxId, remoteSignId: s.victim.signId })
  await new Promise<void>((resolve, reject) => {
    channel.once('secure', () => resolve())
    channel.once('close', (err?: Error) => reject(err ?? new Error('closed in handshake')))
  })
  channel.on('close', () => undefined)
  channel.resume()
  // Keep the victim's acknowledgements of our blocks, drop its data: we never acknowledge it.
  const stream = channel.stream as unknown as { receive(b: Uint8Array): void }
  const receive = stream.receive.bind(stream)
  stream.receive = (bytes: Uint8Array): void => {
    let m
    try {
      m = decodeMessage(bytes)
    } catch {
      return receive(bytes)
    }
    if (m.data.length === 0 && m.eof === 0) return receive(bytes)
    receive(encodeMessage({ id: 0, acknowledging: m.acknowledging, ranges: m.ranges, eof: 0, offset: 0, data: Buffer.alloc(0) }))
  }
  let sent = 0
  // The victim's close (an EOF) never reaches our stripped stream: flood for a fixed time.
  const trips = await friendDuring(s, floodUntilClosed(channel, tinyFrames(500), 8_000).then((n) => (sent = n)))
  const after = await s.victim.memory()
  report('udp ack flood', s, after, sent, trips)
  assert.equal(after.stats.connectedPeers.length, 1, 'only the friend is still connected: the attacker was disconnected')
  assert.ok((after.stats.refused.notReading ?? 0) + (after.stats.refused.writeFailed ?? 0) >= 1, 'counted')
  assertBudget(s, after)
})

test('partial big frames from many identities: strangers get a 1 MiB frame bound and a deadline', async (t) => {
  const s = await setup({ strangerFrameDeadlineMs: 2_000, admission: { ratePerAddress: 1000 } })
  t.after(() => teardown(s))
  const IDENTITIES = 12
  let sent = 0
  const attack = (async () => {
    const channels: TcpChannel[] = []
    for (let i = 0; i < IDENTITIES; i++) {
      // Half declare a 16 MiB frame (over a stranger's bound), half 900 KiB and never finish it.
      for (let c = 0; c < 2; c++) {
        const ch = await tcpSession(s.victim)
        const big = i % 2 === 0
        const head = Buffer.alloc(4)
        head.writeUInt32BE(big ? 16 * MiB : 900 * 1024)
        const body = Buffer.alloc(big ? MiB : 800 * 1024)
        ch.writev([head, body])
        sent += 4 + body.length
        channels.push(ch)
      }
    }
    // Trickle one byte a while to keep them alive (the deadline is per frame, not per silence).
    const until = Date.now() + 4_000
    while (Date.now() < until && channels.some((c) => c.state !== 'closed')) {
      for (const ch of channels) if (ch.state !== 'closed') ch.write(Buffer.alloc(1))
      sent += channels.length
      await delay(250)
    }
    return channels
  })()
  let channels: TcpChannel[] = []
  const trips = await friendDuring(s, attack.then((c) => (channels = c)))
  const after = await s.victim.memory()
  report('partial big frames', s, after, sent, trips)
  assert.equal(channels.filter((c) => c.state !== 'closed').length, 0, 'every attacking channel was closed')
  assert.ok((after.stats.refused.frameTooLarge ?? 0) >= IDENTITIES, `over-bound frames refused (${(after.stats.refused.frameTooLarge ?? 0)})`)
  assert.ok((after.stats.refused.frameDeadline ?? 0) >= IDENTITIES, `unfinished frames timed out (${(after.stats.refused.frameDeadline ?? 0)})`)
  assertBudget(s, after)
})

test('throwaway identities filling the peer table: strangers are evicted, the friend still gets in', async (t) => {
  const MAX_PEERS = 100
  const s = await setup({ maxPeers: MAX_PEERS, maxStrangerPeers: 60, admission: { ratePerAddress: 5000, rateGlobal: 5000 } })
  t.after(() => teardown(s))
  const IDENTITIES = 200
  let sent = 0
  const channels: TcpChannel[] = []
  t.after(() => Promise.all(channels.map((c) => c.close())))
  const attack = (async () => {
    for (let i = 0; i < IDENTITIES; i++) {
      const ch = await tcpSession(s.victim)
      const frame = tinyFrames(1)
      ch.write(frame) // one message: it is now a "useful" stranger
      sent += frame.length
      channels.push(ch)
    }
  })()
  // The friend leaves and comes back during the attack: it must find room.
  await s.friend.platform.disconnect(s.victim.signId)
  const trips = await friendDuring(s, attack)
  const after = await s.victim.memory()
  report(`table fill (${IDENTITIES} identities, maxPeers ${MAX_PEERS})`, s, after, sent, trips)
  assert.ok(after.stats.peers <= MAX_PEERS, `peer table within its bound (${after.stats.peers})`)
  assert.ok(after.stats.strangers <= 60, `strangers within their share (${after.stats.strangers})`)
  assert.ok((after.stats.refused.strangerEvicted ?? 0) >= IDENTITIES - 60, `least recently useful strangers evicted (${(after.stats.refused.strangerEvicted ?? 0)})`)
  assert.equal((after.stats.refused.peerTableFull ?? 0), 0, 'no session refused for lack of room')
  assertBudget(s, after)
})

test('half-open flood: silent TCP connections and Hellos are bounded per address and in all', async (t) => {
  const s = await setup()
  t.after(() => teardown(s))
  const sockets: net.Socket[] = []
  t.after(() => sockets.forEach((x) => x.destroy()))
  const oversized: net.Socket[] = []
  let sent = 0
  const udp = dgram.createSocket('udp4')
  t.after(() => udp.close())
  await new Promise<void>((r) => udp.bind(0, '127.0.0.2', r))
  const attack = (async () => {
    for (let i = 0; i < 400; i++) {
      const socket = net.connect({ host: '127.0.0.1', port: s.victim.port('tcp'), localAddress: `127.0.0.${2 + (i % 4)}` })
      socket.on('error', () => undefined)
      sockets.push(socket)
      // Every other one declares a packet far over the largest Initiate and sends part of it.
      if (i % 2) {
        oversized.push(socket)
        const head = Buffer.alloc(4)
        head.writeUInt32BE(131_000)
        socket.write(Buffer.concat([head, randomBytes(60_000)]))
        sent += 60_004
      }
      if (i % 50 === 0) await delay(10)
    }
    // Hellos (they cost the victim a public-key operation each) from one address.
    for (let i = 0; i < 2000; i++) {
      const hello = Buffer.concat([HELLO_MAGIC, randomBytes(224 - HELLO_MAGIC.length)])
      udp.send(hello, s.victim.port('udp'), '127.0.0.1')
      sent += 224
      if (i % 200 === 0) await delay(5)
    }
    await delay(3_000) // hold them open a while
  })()
  const trips = await friendDuring(s, attack)
  const after = await s.victim.memory()
  report('half-open flood (400 tcp, 2000 hellos)', s, after, sent, trips)
  assert.equal(oversized.filter((x) => !x.destroyed && !x.readableEnded).length, 0, 'a pre-auth packet over the largest Initiate closed its connection at once')
  assert.ok(after.stats.handshaking <= 32, `handshakes under way bounded (${after.stats.handshaking})`)
  assert.ok((after.stats.refused.handshakeConcurrentPerAddress ?? 0) > 0, 'per-address concurrency refused some')
  assert.ok((after.stats.udpDrops['not-admitted'] ?? 0) > 0, 'Hellos over the rate were dropped before crypto')
  assertBudget(s, after)
})

test('throwaway identities filling the UDP session table: a stranger session makes room, the friend gets in over UDP', async (t) => {
  const MAX_SESSIONS = 20
  const s = await setup({ maxUdpSessions: MAX_SESSIONS, admission: { ratePerAddress: 5000, rateGlobal: 5000 } }, 'udp')
  t.after(() => teardown(s))
  const attacker = new UdpChannels({ identity: memoryIdentity() })
  t.after(() => attacker.close())
  const IDENTITIES = 3 * MAX_SESSIONS
  let sent = 0
  const attack = (async () => {
    for (let i = 0; i < IDENTITIES; i++) {
      const ch = attacker.dial('127.0.0.1', s.victim.port('udp'), { identity: memoryIdentity(), remoteBoxId: s.victim.boxId, remoteSignId: s.victim.signId })
      ch.on('close', () => undefined)
      await new Promise<void>((resolve) => {
        ch.once('secure', () => resolve())
        ch.once('close', () => resolve())
      })
      ch.resume()
      const frame = tinyFrames(1)
      if (ch.state === 'open') ch.write(frame)
      sent += frame.length + 1500
    }
  })()
  // The friend leaves (its session released at once) and comes back during the attack.
  await s.friend.platform.disconnect(s.victim.signId)
  const trips = await friendDuring(s, attack)
  const after = await s.victim.memory()
  report(`udp table fill (${IDENTITIES} identities, ${MAX_SESSIONS} sessions)`, s, after, sent, trips)
  assert.ok((after.stats as unknown as { udpSessions: number }).udpSessions <= MAX_SESSIONS, 'UDP sessions within their bound')
  assert.ok((after.stats.refused.udpSessionEvicted ?? 0) >= IDENTITIES - MAX_SESSIONS, `stranger sessions made room (${after.stats.refused.udpSessionEvicted ?? 0})`)
  assert.equal(after.stats.udpDrops['too-many-sessions'] ?? 0, 0, 'no Initiate dropped for lack of room')
  assertBudget(s, after)
})

test('durable DATA flood from throwaway identities that never read: per-frame records stay within the memory budget', async (t) => {
  // The victim's young generation at its smallest, as in test/adversarial-flood.test.ts: six
  // full-rate floods leave up to 2 x 16 MiB of young garbage that the attack does not hold. With
  // default flags this flood peaked at +77 to +95 MiB of RSS in runs on a loaded 2-core machine
  // (before the per-frame records were mended: +389 MiB), too close to the budget for a test.
  const s = await floodSetup({}, '--max-semi-space-size=1')
  t.after(() => floodTeardown(s))
  const IDENTITIES = 6
  const channels: TcpChannel[] = []
  t.after(() => Promise.all(channels.map((c) => c.close())))
  let sent = 0
  const attack = durableFlood(s, IDENTITIES, channels).then((n) => (sent = n))
  const trips = await friendDuring(s, attack)
  const after = await s.victim.memory()
  report(`durable flood (${IDENTITIES} identities)`, s, after, sent, trips)
  assert.ok((after.stats.refused.notReading ?? 0) >= 1, 'a peer that does not read was disconnected')
  assertBudget(s, after)
})
