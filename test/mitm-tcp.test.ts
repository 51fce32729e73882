// A man in the middle on the TCP transport records, replays and tampers; a rogue node claims
// someone else's signId. Every attempt must be refused, and real messages still arrive once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { Platform, MemoryStore, type Directory, type IdentityLike } from '../src/index.js'
import { TcpProxy, replayPackets } from './helpers/tcp-proxy.js'
import { packetKind, STREAM_LIMITS } from '../src/curvecp/packets.js'
import { ClientHandshake } from '../src/curvecp/handshake.js'
import { LengthPrefixDecoder, encodeLengthPrefix } from '../src/transports/length-prefix.js'
import { encodeData } from '../src/connections/frames.js'
import { signKeyPair, signSecretToBoxSecret, boxPublicFromSecret, boxBeforeNm, sign, randomBytes } from '../src/crypto/sodium.js'

// These tests make 100 handshakes in a row from 127.0.0.1: over the per-address admission rate.
const FAST = { timings: { reconnectMinMs: 20, reconnectMaxMs: 200, tickMs: 50, handshakeTimeoutMs: 2_000 }, admission: { ratePerAddress: 10_000 } }

function platform(): Platform {
  return new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, connections: FAST, lookupTimeoutMs: 2_000 })
}

function myInfo(p: Platform): { signId: string; boxId: string; port: number } {
  const info = (p.directory as Directory).getMyNodeInfo()
  return { signId: info.signId, boxId: info.boxId, port: (info.connectionInfo[0]?.transportInfo as { port: number }).port }
}

/** Tells `p` that `signId` (with `boxId`) is reachable at 127.0.0.1:port. */
function route(p: Platform, signId: string, boxId: string, port: number): void {
  p.messaging.send('transports.nodeInfo', 'local', { signId, boxId, connectionInfo: [{ transportType: 'tcp', transportInfo: { address: '127.0.0.1', port } }] })
}

async function setup(t: import('node:test').TestContext): Promise<{ a: Platform; b: Platform; proxy: TcpProxy; received: Array<{ topic: string; payload: unknown; sender: string }>; connections: string[] }> {
  const a = platform()
  const b = platform()
  await Promise.all([a.ready(), b.ready()])
  const B = myInfo(b)
  const proxy = new TcpProxy({ address: '127.0.0.1', port: B.port })
  const port = await proxy.listen()
  route(a, B.signId, B.boxId, port)
  const received: Array<{ topic: string; payload: unknown; sender: string }> = []
  const connections: string[] = []
  b.on('message', (m) => {
    if (m.sender !== 'local') received.push({ topic: m.topic, payload: m.payload, sender: m.sender })
  })
  b.on('connection', (s: string) => connections.push(s))
  t.after(async () => {
    await Promise.all([a.close(), b.close()])
    await proxy.close()
  })
  return { a, b, proxy, received, connections }
}

/** Resolves on the delivery callback's success; rejects on its error, or after `withinMs` (a
 * message never acknowledged fails the test in seconds instead of hanging the suite). */
function sendAndAck(a: Platform, to: string, topic: string, payload: unknown, withinMs = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`'${topic}' was neither acknowledged nor failed within ${withinMs} ms`)), withinMs)
    a.messaging.send(topic, to, payload, {
      callback: (err) => {
        clearTimeout(timer)
        if (err) reject(err)
        else resolve()
      }
    })
  })
}

async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('a recorded session replayed to the server is refused every time', async (t) => {
  const { a, b, proxy, received, connections } = await setup(t)
  const B = myInfo(b)
  for (let i = 0; i < 5; i++) await sendAndAck(a, B.signId, `rec.${i}`, { i })
  assert.equal(received.length, 5)
  const recorded = proxy.connections[0]!.toServer
  assert.deepEqual(recorded.slice(0, 2).map(packetKind), ['hello', 'initiate'])
  const before = b.connectionStats().handshakeDrops['replayed-cookie'] ?? 0
  const REPLAYS = 50
  for (let i = 0; i < REPLAYS; i++) await replayPackets('127.0.0.1', B.port, recorded, 20)
  const refused = (): number => (b.connectionStats().handshakeDrops['replayed-cookie'] ?? 0) - before
  await until(() => refused() >= REPLAYS, 5_000, `${REPLAYS} replayed Initiates to be refused (${refused()} so far)`)
  assert.equal(received.length, 5, 'no replayed message was delivered')
  assert.equal(connections.length, 1, 'no replayed handshake made a session')
  assert.equal((b.connectionStats().handshakeDrops['replayed-cookie'] ?? 0) - before, REPLAYS, 'every replayed Initiate was refused as a replay')
})

test('a data packet (Initiate or Message) replayed inside a live session is refused and never delivered twice', async (t) => {
  const { a, b, proxy, received } = await setup(t)
  const B = myInfo(b)
  const INJECTIONS = 20
  let disconnects = 0
  b.on('disconnected', () => disconnects++)
  for (let i = 0; i < INJECTIONS; i++) {
    await sendAndAck(a, B.signId, `live.${i}`, { i })
    const conn = proxy.connections[proxy.connections.length - 1]!
    // The last client packet that carried data: a Message, or the Initiate (0-RTT data).
    const last = [...conn.toServer].reverse().find((p) => packetKind(p) === 'client-message' || packetKind(p) === 'initiate')!
    const closed = new Promise<void>((resolve) => b.once('disconnected', () => resolve()))
    conn.inject('toServer', last)
    await closed
  }
  await sendAndAck(a, B.signId, 'live.end', {})
  assert.equal(disconnects, INJECTIONS, 'each replayed packet ended its session')
  const topics = received.map((r) => r.topic)
  assert.equal(new Set(topics).size, topics.length, 'no message delivered twice')
  assert.equal(topics.length, INJECTIONS + 1)
})

test('tampered packets are refused; the message arrives once, intact, when the tampering stops', async (t) => {
  const { a, b, proxy, received } = await setup(t)
  const B = myInfo(b)
  const TAMPERED = 30
  let tampered = 0
  // Flip one bit of one packet per connection, cycling through every kind and position.
  proxy.hook = (packet, direction, conn) => {
    if (conn.index >= TAMPERED) return packet
    const seen = conn[direction].length
    const which = conn.index % 4 // 0: Hello, 1: Cookie, 2: Initiate (with the data), 3: the server's first Message
    const target = which === 0 ? direction === 'toServer' && seen === 1 : which === 1 ? direction === 'toClient' && seen === 1 : which === 2 ? direction === 'toServer' && seen === 2 : direction === 'toClient' && seen === 2
    if (!target || (conn as { done?: boolean }).done) return packet
    ;(conn as { done?: boolean }).done = true
    tampered++
    const out = Buffer.from(packet)
    const pos = 8 + ((conn.index * 37) % (out.length - 8))
    out[pos] = (out[pos] as number) ^ (1 << conn.index % 8)
    return out
  }
  const payload = { text: 'intact', n: 42 }
  // About 30 reconnects, several of them through a 2 s handshake timeout: ~6 s.
  await sendAndAck(a, B.signId, 'tamper.msg', payload, 20_000)
  assert.ok(tampered >= TAMPERED - 1, `tampered ${tampered} connections`)
  assert.equal(received.length, 1, 'delivered exactly once')
  assert.deepEqual(JSON.parse(received[0]!.payload as string), payload)
})

/** A rogue identity that claims `victimSignId` but holds its own keys. */
function rogueIdentity(victimSignId: string): IdentityLike {
  const keys = signKeyPair()
  const boxSecret = signSecretToBoxSecret(keys.secretKey)
  return {
    getSignId: () => victimSignId,
    getBoxId: () => boxPublicFromSecret(boxSecret).toString('base64'),
    sign: (m) => sign(m, keys.secretKey),
    boxBeforeNm: (pk) => boxBeforeNm(pk, boxSecret)
  }
}

/** Runs a full client handshake over raw TCP with `identity`, then sends a DATA frame. */
async function rogueAttempt(port: number, serverBoxId: string, identity: IdentityLike): Promise<void> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const hs = new ClientHandshake({ identity, serverLongTermKey: Buffer.from(serverBoxId, 'base64'), limits: STREAM_LIMITS, auth: 'signid' })
  const write = (p: Buffer): void => void socket.write(Buffer.concat([encodeLengthPrefix(p.length), p]))
  const decoder = new LengthPrefixDecoder(1 << 20)
  const frame = encodeData({ id: randomBytes(16), protocol: 'ms', topic: 'spoof.hello', payload: '"I am the victim"' })
  await new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk, (p) => {
        if (hs.state === 'hello-sent') {
          const init = hs.handleCookie(p, frame)
          if (init) write(init)
        }
      })
    })
    socket.on('close', () => resolve())
    setTimeout(() => {
      socket.destroy()
      resolve()
    }, 300)
    write(hs.hello())
  })
}

test('a node claiming another node\'s signId is refused every time', async (t) => {
  const { a, b, received, connections } = await setup(t)
  const A = myInfo(a)
  const B = myInfo(b)
  const ATTEMPTS = 100
  const before = b.connectionStats().handshakeDrops['bad-auth'] ?? 0
  for (let i = 0; i < ATTEMPTS; i++) await rogueAttempt(B.port, B.boxId, rogueIdentity(A.signId))
  assert.equal((b.connectionStats().handshakeDrops['bad-auth'] ?? 0) - before, ATTEMPTS, 'every spoofed Initiate refused')
  assert.equal(received.length, 0)
  assert.equal(connections.length, 0)
  // Control: the genuine A is accepted.
  await sendAndAck(a, B.signId, 'genuine', 1)
  assert.deepEqual(connections, [A.signId])
})

test('a man in the middle answering with its own key never gets the message', async (t) => {
  const { a, b } = await setup(t)
  const B = myInfo(b)
  const mitm = platform()
  await mitm.ready()
  t.after(() => mitm.close())
  const stolen: unknown[] = []
  mitm.on('message', (m) => {
    if (m.sender !== 'local') stolen.push(m)
  })
  const M = myInfo(mitm)
  // A is told that B lives at the MITM's address.
  ;(a.directory as Directory).forget(B.signId)
  route(a, B.signId, B.boxId, M.port)
  // The handshake with the impostor times out (2 s): the realtime message then fails.
  const outcome = new Promise<Error | null>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the realtime 'secret' was neither acknowledged nor failed within 10 s")), 10_000)
    a.messaging.send('secret', B.signId, { pin: 1234 }, { realtime: true, callback: (err) => (clearTimeout(timer), resolve(err)) })
  })
  const err = await outcome
  assert.ok(err, 'the send fails instead of reaching the impostor')
  assert.equal((err as { code?: string }).code, 'ERR_UNREACHABLE', String(err))
  assert.equal(stolen.length, 0)
  assert.ok((mitm.connectionStats().handshakeDrops['bad-hello'] ?? 0) >= 1, 'the impostor could not even open the Hello')
  assert.deepEqual(a.connectedPeers(), [])
})
