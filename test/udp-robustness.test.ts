/**
 * Hostile datagrams against a UDP endpoint on 127.0.0.1: truncated, oversized, garbage, from an
 * unknown client, replayed; and a bounded flood of Hellos from many source ports. Each is
 * dropped and counted, nothing is kept per sender, and the node keeps serving.
 */
import { MAX_PRECOMPUTED_SESSION_KEYS } from '../src/curvecp/server-handshake.js'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import v8 from 'node:v8'
import vm from 'node:vm'
import { randomBytes } from '../src/crypto/sodium.js'
import { ClientHandshake } from '../src/curvecp/handshake.js'
import { UDP_LIMITS, packetKind } from '../src/curvecp/packets.js'
import { CLIENT_MESSAGE_MAGIC, COOKIE_MAGIC, HELLO_MAGIC, INITIATE_MAGIC, SERVER_MESSAGE_MAGIC } from '../src/curvecp/constants.js'
import type { UdpChannel } from '../src/connections/udp-channel.js'
import { UdpChannels as UdpTransport } from '../src/connections/udp-channels.js'
import { memoryIdentity, nextEvent, waitUntil, delay } from './helpers/index.js'
import { lossyLink } from './helpers/udp-lossy.js'
import type { TestContext } from 'node:test'

const FAST = { helloRetryMs: 50, timeWaitMs: 50 }

async function server(t: TestContext): Promise<{ transport: UdpTransport; identity: ReturnType<typeof memoryIdentity>; channels: UdpChannel[] }> {
  const identity = memoryIdentity()
  const transport = new UdpTransport({ identity, timings: FAST })
  t.after(() => transport.close())
  await transport.listen({ host: '127.0.0.1' })
  const channels: UdpChannel[] = []
  transport.onChannel((c) => {
    channels.push(c)
    c.on('data', (d: Buffer) => c.write(d))
    c.resume()
  })
  return { transport, identity, channels }
}

async function rawSocket(t: TestContext): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()))
  s.on('message', () => {})
  t.after(() => new Promise<void>((resolve) => s.close(() => resolve())))
  return s
}

function send(s: dgram.Socket, packet: Buffer, port: number): Promise<void> {
  return new Promise((resolve, reject) => s.send(packet, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())))
}

function withMagic(magic: Buffer, length: number): Buffer {
  const p = randomBytes(length)
  magic.copy(p, 0)
  return p
}

/**
 * Sends `packets` in batches of 50, each from the next sockets in turn, as fast as the endpoint
 * reads them: at most 50 wait in the kernel, so the flood is measured and not the kernel's drops
 * (CI machines may have small socket buffers). A batch the kernel dropped part of is let go after
 * 100 ms without progress.
 */
async function floodPaced(sockets: dgram.Socket[], packets: Buffer[], port: number, transport: UdpTransport): Promise<void> {
  const BATCH = 50
  const read = (): number => transport.endpoint.stats.packetsIn
  const base = read()
  for (let i = 0; i < packets.length; i += BATCH) {
    const n = Math.min(BATCH, packets.length - i)
    for (let j = 0; j < n; j++) (sockets[(i + j) % sockets.length] as dgram.Socket).send(packets[i + j] as Buffer, port, '127.0.0.1')
    let last = read()
    let lastProgress = performance.now()
    while (read() - base < i + n) {
      await new Promise((resolve) => setImmediate(resolve))
      if (read() !== last) {
        last = read()
        lastProgress = performance.now()
      } else if (performance.now() - lastProgress > 100) {
        break
      }
    }
  }
}

/** A channel from a fresh client, echoing `text`: the node still serves. */
async function stillServes(t: TestContext, port: number, boxId: string): Promise<void> {
  const client = new UdpTransport({ identity: memoryIdentity(), timings: FAST })
  t.after(() => client.close())
  const ch = client.dial('127.0.0.1', port, { remoteBoxId: boxId })
  await nextEvent(ch, 'secure', 5_000)
  const echo = nextEvent<[Buffer]>(ch, 'data', 5_000)
  ch.resume()
  ch.write(Buffer.from('still here'))
  assert.equal((await echo)[0].toString(), 'still here')
  ch.close()
}

test('truncated, oversized, garbage and unknown-client datagrams are dropped and counted, never kept', { timeout: 30_000 }, async (t) => {
  const { transport, identity } = await server(t)
  const port = transport.port
  const s = await rawSocket(t)
  const drops = transport.endpoint.drops
  const cases: Array<[string, Buffer]> = [
    ['truncated', Buffer.alloc(0)],
    ['truncated', randomBytes(10)],
    ['truncated', withMagic(HELLO_MAGIC, 79)],
    ['oversized', withMagic(INITIATE_MAGIC, 1185)],
    ['oversized', randomBytes(2000)],
    ['oversized', randomBytes(9000)],
    ['garbage', randomBytes(224)],
    ['garbage', Buffer.alloc(600)],
    ['wrong-size', withMagic(HELLO_MAGIC, 240)],
    ['wrong-size', withMagic(HELLO_MAGIC, 223)],
    ['wrong-size', withMagic(INITIATE_MAGIC, 544)],
    ['wrong-size', withMagic(INITIATE_MAGIC, 561)],
    ['wrong-size', withMagic(CLIENT_MESSAGE_MAGIC, 100)],
    ['bad-hello', withMagic(HELLO_MAGIC, 224)],
    ['bad-initiate', withMagic(INITIATE_MAGIC, 560)],
    ['bad-initiate', withMagic(INITIATE_MAGIC, 1184)],
    ['unknown-client', withMagic(CLIENT_MESSAGE_MAGIC, 112)],
    ['unknown-client', withMagic(CLIENT_MESSAGE_MAGIC, 1184)],
    ['unknown-dial', withMagic(COOKIE_MAGIC, 200)],
    ['unknown-dial', withMagic(SERVER_MESSAGE_MAGIC, 1152)]
  ]
  for (const [reason, packet] of cases) {
    // Hellos name our (zero) extension; the rest of the header is random.
    if (packetKind(packet) === 'hello' && packet.length === 224) packet.fill(0, 8, 24).fill(0, 72, 136)
    const before = drops[reason as keyof typeof drops]
    const sent = transport.endpoint.stats.packetsIn
    await send(s, packet, port)
    await waitUntil(() => transport.endpoint.stats.packetsIn > sent, 2_000, `the endpoint to read a ${packet.length}-byte datagram`)
    assert.equal(drops[reason as keyof typeof drops], before + 1, `${packet.length}-byte ${packetKind(packet) ?? 'non-CurveCP'} datagram dropped as ${reason}`)
  }
  // Fuzz: random bodies behind every magic, at every interesting length.
  // Each is read and dropped (counted) or answered statelessly (a Hello that parses gets a Cookie).
  const counted = (): number => Object.values(drops).reduce((n, d) => n + d, 0) + transport.endpoint.stats.cookiesSent
  const readBefore = transport.endpoint.stats.packetsIn
  const countedBefore = counted()
  let fuzzed = 0
  for (const magic of [HELLO_MAGIC, COOKIE_MAGIC, INITIATE_MAGIC, CLIENT_MESSAGE_MAGIC, SERVER_MESSAGE_MAGIC]) {
    for (const len of [80, 96, 112, 200, 224, 560, 576, 1104, 1184]) {
      await send(s, withMagic(magic, len), port)
      fuzzed++
    }
  }
  await waitUntil(() => transport.endpoint.stats.packetsIn - readBefore >= fuzzed, 2_000, `the endpoint to read the ${fuzzed} fuzzed datagrams`)
  assert.equal(transport.endpoint.stats.packetsIn - readBefore, fuzzed)
  assert.equal(counted() - countedBefore, fuzzed, 'every fuzzed datagram read was dropped and counted')
  assert.equal(transport.endpoint.sessionCount, 0, 'no per-client state')
  assert.equal(transport.endpoint.dialCount, 0)
  assert.equal(transport.channelCount, 0)
  await stillServes(t, port, identity.getBoxId())
})

test('replayed datagrams are dropped: Hello, Initiate and Messages, during and after the session', { timeout: 30_000 }, async (t) => {
  const { transport, identity, channels } = await server(t)
  const rec = lossyLink({ record: true })
  const client = new UdpTransport({ identity: memoryIdentity(), timings: FAST, wrapSocket: rec.wrap })
  t.after(() => client.close())
  const ch = client.dial('127.0.0.1', transport.port, { remoteBoxId: identity.getBoxId() })
  await nextEvent(ch, 'secure')
  const echoed: Buffer[] = []
  ch.on('data', (d: Buffer) => echoed.push(Buffer.from(d)))
  ch.resume()
  for (let i = 0; i < 20; i++) ch.write(Buffer.from(`message ${i};`))
  const expected = Array.from({ length: 20 }, (_, i) => `message ${i};`).join('')
  await waitUntil(() => Buffer.concat(echoed).toString() === expected, 5_000, 'the echo')
  const session = channels[0] as UdpChannel
  const serverGot = session.stats.bytesIn
  const recorded = rec.sentLog.map((r) => r.packet)
  assert.ok(recorded.some((p) => packetKind(p) === 'hello') && recorded.some((p) => packetKind(p) === 'initiate') && recorded.some((p) => packetKind(p) === 'client-message'))

  // An attacker replays everything from another port, and from the client's own port.
  const attacker = await rawSocket(t)
  const droppedBefore = session.stats.dropped
  const cookiesBefore = transport.endpoint.stats.cookiesSent
  for (const p of recorded) await send(attacker, p, transport.port)
  for (const p of recorded) rec.socket?.send(p, transport.port, '127.0.0.1')
  const replayedInSession = recorded.filter((p) => packetKind(p) === 'initiate' || packetKind(p) === 'client-message').length * 2
  await waitUntil(() => session.stats.dropped - droppedBefore >= replayedInSession, 5_000, 'the session to drop every replayed Initiate and Message')
  assert.equal(session.stats.bytesIn, serverGot, 'no replayed byte reached the application')
  assert.equal(transport.endpoint.sessionCount, 1, 'still the one session')
  assert.equal(transport.endpoint.stats.accepted, 1)
  // A replayed Hello is answered (stateless) with a Cookie, and nothing is kept.
  assert.ok(transport.endpoint.stats.cookiesSent > cookiesBefore)

  // After the session ends, its Initiate cannot start a new one: the cookie was used.
  ch.close()
  await waitUntil(() => transport.endpoint.sessionCount === 0, 5_000, 'the session to be released')
  const initiates = recorded.filter((p) => packetKind(p) === 'initiate')
  const replayedCookieBefore = transport.endpoint.handshake.drops['replayed-cookie']
  for (const p of initiates) await send(attacker, p, transport.port)
  await waitUntil(() => transport.endpoint.handshake.drops['replayed-cookie'] - replayedCookieBefore >= initiates.length, 5_000, 'replayed Initiates refused')
  assert.equal(transport.endpoint.sessionCount, 0)
  assert.equal(transport.endpoint.stats.accepted, 1)
})

test('a flood of 20,000 Hellos from 200 source ports leaves no per-client state and the heap flat', { timeout: 120_000 }, async (t) => {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  const { transport, identity } = await server(t)
  const port = transport.port
  const SOCKETS = 200
  const HELLOS = 20_000
  const KEYS = 2_000
  // Valid Hellos (each opens, each costs the server a Cookie): 2,000 client keys, 10 nonces each.
  const hellos: Buffer[] = []
  for (let k = 0; k < KEYS; k++) {
    const hs = new ClientHandshake({ identity: memoryIdentity(), serverLongTermKey: Buffer.from(identity.getBoxId(), 'base64'), limits: UDP_LIMITS, auth: 'signid' })
    for (let i = 0; i < HELLOS / KEYS; i++) hellos.push(hs.hello())
  }
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => rawSocket(t)))
  let cookies = 0
  for (const s of sockets) s.on('message', () => cookies++)

  gc()
  const heapBefore = process.memoryUsage().heapUsed
  const started = performance.now()
  await floodPaced(sockets, hellos, port, transport)
  await delay(200)
  const ms = performance.now() - started
  gc()
  const heapAfter = process.memoryUsage().heapUsed
  const growth = heapAfter - heapBefore
  t.diagnostic(`${transport.endpoint.stats.packetsIn} Hellos read, ${transport.endpoint.stats.cookiesSent} Cookies sent, ${cookies} received by the flooders, in ${ms.toFixed(0)} ms; heap ${(heapBefore / 1e6).toFixed(1)} -> ${(heapAfter / 1e6).toFixed(1)} MB`)
  assert.ok(transport.endpoint.stats.packetsIn >= HELLOS * 0.9, `the endpoint read ${transport.endpoint.stats.packetsIn} of ${HELLOS}`)
  assert.equal(transport.endpoint.stats.cookiesSent, transport.endpoint.stats.packetsIn, 'every valid Hello read got its Cookie (and nothing more)')
  assert.equal(transport.endpoint.sessionCount, 0, 'no per-client state')
  assert.equal(transport.channelCount, 0)
  // Session keys made ahead for Initiates to come (one per turn at most) stay bounded too.
  assert.ok(transport.endpoint.handshake.precomputedSessionKeys <= MAX_PRECOMPUTED_SESSION_KEYS, `${transport.endpoint.handshake.precomputedSessionKeys} session keys made ahead`)
  assert.ok(growth < 4 * 1024 * 1024, `heap grew by ${(growth / 1e6).toFixed(2)} MB`)
  // Cookies are never larger than Hellos: the flood cannot be amplified.
  assert.ok(transport.endpoint.stats.bytesOut <= transport.endpoint.stats.bytesIn)
  await stillServes(t, port, identity.getBoxId())
})

test('a flood of forged Initiates is refused before any state is made', { timeout: 60_000 }, async (t) => {
  const { transport, identity } = await server(t)
  const sockets = await Promise.all(Array.from({ length: 20 }, () => rawSocket(t)))
  const N = 4000
  const forged = Array.from({ length: N }, (_, i) => {
    const p = withMagic(INITIATE_MAGIC, 560 + 16 * (i % 40))
    return p.fill(0, 8, 24) // our extension, so the cookie check is reached
  })
  await floodPaced(sockets, forged, transport.port, transport)
  await waitUntil(() => transport.endpoint.drops['bad-initiate'] >= N * 0.9, 30_000, 'the forged Initiates to be dropped')
  assert.equal(transport.endpoint.sessionCount, 0)
  assert.ok(transport.endpoint.handshake.drops['bad-cookie'] >= N * 0.9)
  await stillServes(t, transport.port, identity.getBoxId())
})
