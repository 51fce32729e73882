/**
 * UDP channels between two endpoints on 127.0.0.1: the handshake with our signId extension, a
 * few MiB each way, loss, Hello and Initiate retransmission, closing, timeouts, and the
 * transport surface the connection manager uses.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { UdpChannel } from '../src/connections/udp-channel.js'
import { UdpChannels as UdpTransport, type UdpChannelsOptions as UdpTransportOptions } from '../src/connections/udp-channels.js'
import { udpTarget } from '../src/transports/udp.js'
import { packetKind } from '../src/curvecp/packets.js'
import { memoryIdentity, waitUntil, nextEvent } from './helpers/index.js'
import { lossyLink } from './helpers/udp-lossy.js'
import { streamPattern } from './helpers/udp-curvecp-tools.js'
import type { TestContext } from 'node:test'

const FAST = { helloRetryMs: 50, handshakeTimeoutMs: 5_000, timeWaitMs: 50, lingerMs: 2_000 }

async function node(t: TestContext, options: Partial<UdpTransportOptions> = {}): Promise<{ transport: UdpTransport; identity: ReturnType<typeof memoryIdentity> }> {
  const identity = memoryIdentity()
  const transport = new UdpTransport({ identity, timings: FAST, ...options })
  t.after(() => transport.close())
  await transport.listen({ host: '127.0.0.1' })
  return { transport, identity }
}

/** Writes `data` with back-pressure, then ends our side. */
function sendAll(channel: UdpChannel, data: Buffer): void {
  let at = 0
  const pump = (): void => {
    while (at < data.length) {
      const n = Math.min(64 * 1024, data.length - at)
      const ok = channel.write(data.subarray(at, at + n))
      at += n
      if (!ok) return
    }
    channel.off('drain', pump)
    channel.end()
  }
  channel.on('drain', pump)
  pump()
}

function collect(channel: UdpChannel): { chunks: Buffer[]; bytes: () => Buffer; ended: Promise<void> } {
  const chunks: Buffer[] = []
  channel.on('data', (d: Buffer) => chunks.push(Buffer.from(d)))
  channel.resume()
  const ended = new Promise<void>((resolve, reject) => {
    channel.once('end', () => resolve())
    channel.once('close', (err?: Error) => (err ? reject(err) : resolve()))
  })
  return { chunks, bytes: () => Buffer.concat(chunks), ended }
}

/** Both ways at once, `bytes` each; every byte checked. */
async function exchange(t: TestContext, bytes: number, a: Partial<UdpTransportOptions> = {}, b: Partial<UdpTransportOptions> = {}): Promise<{ client: UdpChannel; server: UdpChannel; ms: number }> {
  // Half-open: each side ends after its own data, whichever finishes first.
  const A = await node(t, { allowHalfOpen: true, ...a })
  const B = await node(t, { allowHalfOpen: true, ...b })
  const toServer = streamPattern(bytes, 11)
  const toClient = streamPattern(bytes, 12)
  let server: UdpChannel | undefined
  let serverGot: ReturnType<typeof collect> | undefined
  const accepted = new Promise<void>((resolve) => {
    B.transport.onChannel((ch) => {
      server = ch
      serverGot = collect(ch)
      ch.once('secure', (signId: string) => {
        assert.equal(signId, A.identity.getSignId(), 'the server learns the client signId')
        sendAll(ch, toClient)
        resolve()
      })
    })
  })
  const started = performance.now()
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId(), remoteSignId: B.identity.getSignId() })
  const clientGot = collect(client)
  const [signId] = await nextEvent<[string]>(client, 'secure', 10_000)
  assert.equal(signId, B.identity.getSignId())
  sendAll(client, toServer)
  await accepted
  await Promise.all([clientGot.ended, (serverGot as ReturnType<typeof collect>).ended])
  const ms = performance.now() - started
  const mismatch = (got: Buffer, want: Buffer): string => {
    let i = 0
    while (i < Math.min(got.length, want.length) && got[i] === want[i]) i++
    return `got ${got.length} bytes, want ${want.length}; first difference at ${i}`
  }
  const fromClient = (serverGot as ReturnType<typeof collect>).bytes()
  assert.ok(fromClient.equals(toServer), `client -> server: every byte (${mismatch(fromClient, toServer)})`)
  assert.ok(clientGot.bytes().equals(toClient), `server -> client: every byte (${mismatch(clientGot.bytes(), toClient)})`)
  return { client, server: server as UdpChannel, ms }
}

test('two nodes exchange 4 MiB each way with the signId handshake', { timeout: 60_000 }, async (t) => {
  const { client, server, ms } = await exchange(t, 4 << 20)
  t.diagnostic(`4 MiB each way in ${ms.toFixed(0)} ms; rtt ${client.rttMs.toFixed(2)} ms; ${JSON.stringify({ ...client.stream.stats, dropped: undefined })}`)
  await waitUntil(() => client.isReleased && server.isReleased, 5_000, 'both channels released after time-wait')
  assert.equal(client.state, 'closed')
  assert.equal(server.state, 'closed')
})

for (const loss of [0.01, 0.05]) {
  test(`every byte arrives with ${loss * 100}% datagram loss each way (seeded)`, { timeout: 120_000 }, async (t) => {
    const la = lossyLink({ loss, seed: 1 })
    const lb = lossyLink({ loss, seed: 2 })
    const { client, ms } = await exchange(t, 1 << 20, { wrapSocket: la.wrap }, { wrapSocket: lb.wrap })
    assert.ok(la.stats.droppedOut + la.stats.droppedIn > 0 && lb.stats.droppedOut + lb.stats.droppedIn > 0, 'datagrams were lost')
    assert.ok(client.stream.stats.retransmissions > 0)
    t.diagnostic(`1 MiB each way at ${loss * 100}% loss in ${ms.toFixed(0)} ms; lost ${la.stats.droppedOut + la.stats.droppedIn + lb.stats.droppedOut + lb.stats.droppedIn} datagrams; client retransmitted ${client.stream.stats.retransmissions} blocks`)
  })
}

test('Hello goes again with backoff until a Cookie comes', { timeout: 20_000 }, async (t) => {
  let hellosDropped = 0
  const lb = lossyLink({ drop: (p, dir) => dir === 'in' && packetKind(p) === 'hello' && hellosDropped++ < 3 })
  const A = await node(t)
  const B = await node(t, { wrapSocket: lb.wrap })
  B.transport.onChannel(() => {})
  const started = performance.now()
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(client, 'secure', 10_000)
  const ms = performance.now() - started
  assert.equal(client.stats.hellos, 4, 'three lost Hellos, the fourth answered')
  // 50 ms, then x1.5 each, each with up to as much again at random: at least 50 + 75 + 112 ms.
  assert.ok(ms >= 237, `waited ${ms.toFixed(0)} ms`)
  client.close()
})

test('Initiate goes again until the first Server Message arrives; the server takes repeats in the session', { timeout: 20_000 }, async (t) => {
  let dropped = 0
  // The server's first answers are lost: the client must repeat its Initiate.
  const lb = lossyLink({ drop: (p, dir) => dir === 'out' && packetKind(p) === 'server-message' && dropped++ < 3 })
  const A = await node(t, { stream: { initialRtoMs: 100 } })
  const B = await node(t, { wrapSocket: lb.wrap })
  const got: Buffer[] = []
  B.transport.onChannel((ch) => ch.on('data', (d: Buffer) => got.push(Buffer.from(d))).resume())
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  client.write(Buffer.from('first bytes ride in the Initiate'))
  await nextEvent(client, 'secure', 10_000)
  assert.ok(client.stats.initiates >= 2, `${client.stats.initiates} Initiates`)
  assert.equal(B.transport.endpoint.stats.accepted, 1, 'one session for all the Initiates')
  assert.equal(B.transport.endpoint.sessionCount, 1)
  await waitUntil(() => Buffer.concat(got).toString() === 'first bytes ride in the Initiate', 5_000, 'the first bytes')
  client.close()
})

test('the handshake times out when nobody answers, and leaves nothing behind', { timeout: 10_000 }, async (t) => {
  const A = await node(t, { timings: { ...FAST, handshakeTimeoutMs: 300 } })
  const B = await node(t) // listens but the client names a key it does not hold
  B.transport.onChannel(() => assert.fail('no channel expected'))
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: memoryIdentity().getBoxId() })
  const [err] = await nextEvent<[Error & { code?: string }]>(client, 'close', 5_000)
  assert.equal(err.code, 'ERR_HANDSHAKE')
  assert.ok(client.isReleased)
  assert.equal(A.transport.endpoint.dialCount, 0)
  assert.equal(A.transport.channelCount, 0)
  assert.ok(B.transport.endpoint.handshake.drops['bad-hello'] > 0, 'the server could not open the Hello')
})

test('close() ends gracefully: the peer gets what was written, then close without error', { timeout: 10_000 }, async (t) => {
  const A = await node(t)
  const B = await node(t)
  const server = new Promise<UdpChannel>((resolve) => B.transport.onChannel(resolve))
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(client, 'secure')
  const ch = await server
  const got = collect(ch)
  client.write(Buffer.from('last words'))
  client.close()
  assert.equal(client.state, 'closed')
  assert.equal(client.write(Buffer.from('x')), false, 'no writes after close')
  const [err] = await nextEvent<[Error | undefined]>(ch, 'close', 5_000)
  assert.equal(err, undefined)
  assert.equal(got.bytes().toString(), 'last words')
  await waitUntil(() => client.isReleased && ch.isReleased, 5_000, 'both released')
  assert.equal(A.transport.endpoint.dialCount + B.transport.endpoint.sessionCount, 0)
})

test('close(err) reaches the peer as a failure', { timeout: 10_000 }, async (t) => {
  const A = await node(t)
  const B = await node(t)
  const server = new Promise<UdpChannel>((resolve) => B.transport.onChannel(resolve))
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(client, 'secure')
  const ch = await server
  client.close(new Error('bad frame'))
  const [err] = await nextEvent<[Error & { code?: string }]>(ch, 'close', 5_000)
  assert.equal(err.code, 'ERR_PROTOCOL')
})

test('a peer that falls silent is pinged, then closed as dead', { timeout: 10_000 }, async (t) => {
  const A = await node(t, { timings: { ...FAST, keepaliveMs: 100, deadAfterMs: 400 } })
  let serverDrops = true
  const lb = lossyLink({ drop: () => serverDrops })
  const B = await node(t, { wrapSocket: lb.wrap })
  B.transport.onChannel(() => {})
  serverDrops = false
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(client, 'secure')
  const quietSince = performance.now()
  serverDrops = true // the server vanishes (a killed process says nothing on UDP)
  const [err] = await nextEvent<[Error & { code?: string }]>(client, 'close', 5_000)
  assert.equal(err.code, 'ERR_TIMEOUT')
  const ms = performance.now() - quietSince
  assert.ok(ms >= 300 && ms < 2_000, `declared dead after ${ms.toFixed(0)} ms`)
  assert.ok(client.stream.stats.blocksSent >= 2, 'it pinged before giving up')
})

test('an idle channel stays up: pings keep it alive past deadAfterMs', { timeout: 10_000 }, async (t) => {
  const A = await node(t, { timings: { ...FAST, keepaliveMs: 50, deadAfterMs: 200 } })
  const B = await node(t, { timings: { ...FAST, keepaliveMs: 50, deadAfterMs: 200 } })
  const server = new Promise<UdpChannel>((resolve) => B.transport.onChannel(resolve))
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(client, 'secure')
  const ch = await server
  await new Promise((resolve) => setTimeout(resolve, 800))
  assert.equal(client.state, 'open')
  assert.equal(ch.state, 'open')
  client.close()
})

test('crossing dials give two independent channels; many dials to one server work at once', { timeout: 20_000 }, async (t) => {
  const A = await node(t)
  const B = await node(t)
  const acceptedA: UdpChannel[] = []
  const acceptedB: UdpChannel[] = []
  A.transport.onChannel((c) => acceptedA.push(c))
  B.transport.onChannel((c) => {
    acceptedB.push(c)
    c.on('data', (d: Buffer) => c.write(d))
    c.resume()
  })
  const ab = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  const ba = B.transport.dial('127.0.0.1', A.transport.port, { remoteBoxId: A.identity.getBoxId() })
  await Promise.all([nextEvent(ab, 'secure'), nextEvent(ba, 'secure')])
  const more = Array.from({ length: 8 }, () => A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() }))
  await Promise.all(more.map((c) => nextEvent(c, 'secure')))
  const echoes = await Promise.all(
    more.map(async (c, i) => {
      const d = nextEvent<[Buffer]>(c, 'data')
      c.resume()
      c.write(Buffer.from(`dial ${i}`))
      return (await d)[0].toString()
    })
  )
  assert.deepEqual(echoes, more.map((_, i) => `dial ${i}`))
  assert.equal(acceptedA.length, 1)
  assert.equal(acceptedB.length, 9)
  assert.equal(B.transport.endpoint.sessionCount, 9)
  for (const c of [ab, ba, ...more]) c.close()
})

test('connectionInfo lists udp entries, and udpTarget reads them', async (t) => {
  const A = await node(t)
  const info = A.transport.connectionInfo()
  assert.deepEqual(info, [{ transportType: 'udp', transportInfo: { address: '127.0.0.1', port: A.transport.port } }])
  assert.deepEqual(udpTarget(info[0] as (typeof info)[0]), { address: '127.0.0.1', port: A.transport.port })
  assert.equal(udpTarget({ transportType: 'tcp', transportInfo: { address: '127.0.0.1', port: 1 } }), null)
  assert.equal(udpTarget({ transportType: 'udp', transportInfo: { address: 'example.com', port: 1 } }), null)
  assert.equal(udpTarget({ transportType: 'udp', transportInfo: { address: '127.0.0.1', port: 70000 } }), null)
  const all = new UdpTransport({ identity: memoryIdentity() })
  t.after(() => all.close())
  await all.listen()
  const entries = all.connectionInfo()
  assert.ok(entries.length >= 1 && entries.every((e) => e.transportType === 'udp' && (e.transportInfo as { port: number }).port === all.port))
})

test('a dial before listen binds a free port; close() releases every channel and timer', { timeout: 10_000 }, async (t) => {
  const B = await node(t)
  const accepted: UdpChannel[] = []
  B.transport.onChannel((c) => accepted.push(c))
  const A = new UdpTransport({ identity: memoryIdentity(), timings: FAST })
  const ch = A.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(ch, 'secure')
  assert.ok(A.port > 0)
  assert.deepEqual(A.connectionInfo(), [], 'dial-only: nothing to publish')
  const server = accepted[0] as UdpChannel
  server.resume()
  const serverClosed = nextEvent<[Error | undefined]>(server, 'close')
  const closed = nextEvent<[Error | undefined]>(ch, 'close')
  await A.close()
  assert.equal((await closed)[0], undefined, 'a graceful close of the transport')
  assert.ok(ch.isReleased)
  assert.equal(A.channelCount, 0)
  assert.equal((await serverClosed)[0], undefined, 'the peer saw a clean end at once')
})

test('closing a transport whose peer went dark takes at most closeLingerMs', { timeout: 10_000 }, async (t) => {
  const B = await node(t)
  B.transport.onChannel(() => {})
  let dark = false
  const la = lossyLink({ drop: () => dark })
  const A = new UdpTransport({ identity: memoryIdentity(), timings: FAST, wrapSocket: la.wrap, closeLingerMs: 100 })
  const ch = A.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(ch, 'secure')
  ch.write(Buffer.alloc(10_000))
  dark = true
  const started = performance.now()
  await A.close()
  const ms = performance.now() - started
  assert.ok(ms >= 90 && ms < 1_000, `closed in ${ms.toFixed(0)} ms`)
  assert.ok(ch.isReleased)
})

test('abort() ends the peer at once with a failure, even with bytes missing', { timeout: 10_000 }, async (t) => {
  const A = await node(t)
  let dropData = false
  const lb = lossyLink({ drop: (p, dir) => dropData && dir === 'in' && packetKind(p) === 'client-message' && p.length > 300 })
  const B = await node(t, { wrapSocket: lb.wrap })
  const accepted = new Promise<UdpChannel>((resolve) => B.transport.onChannel(resolve))
  const ch = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(ch, 'secure')
  const server = await accepted
  server.resume()
  dropData = true
  ch.write(Buffer.alloc(5_000, 1))
  await waitUntil(() => lb.stats.droppedIn >= 4, 5_000, 'the data to be lost')
  const closed = nextEvent<[Error & { code?: string }]>(server, 'close', 2_000)
  ch.abort(new Error('giving up'))
  assert.ok(ch.isReleased)
  const [err] = await closed
  assert.equal(err.code, 'ERR_PROTOCOL')
  assert.equal(server.stats.bytesIn, 0)
})

test('a channel starts paused: data and the peer end wait for resume(); writev sends one stretch', { timeout: 10_000 }, async (t) => {
  const A = await node(t)
  const B = await node(t, { allowHalfOpen: true })
  const server = new Promise<UdpChannel>((resolve) => B.transport.onChannel(resolve))
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  client.writev([Buffer.from('one '), Buffer.from('two '), Buffer.from('three')])
  client.end()
  const ch = await server
  await waitUntil(() => ch.stats.bytesIn === 13, 5_000, 'the bytes to arrive while paused')
  const events: string[] = []
  ch.on('data', (d: Buffer) => events.push(`data:${d.toString()}`))
  ch.on('end', () => events.push('end'))
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(events, [], 'nothing before resume()')
  ch.resume()
  assert.equal(events.join('|').replace(/\|data:/g, ''), 'data:one two three|end')
  ch.close()
})

test('close() waits for the channels to say `flushed`, not for closeLingerMs; repeat calls share one promise', { timeout: 10_000 }, async (t) => {
  const B = await node(t)
  const accepted: UdpChannel[] = []
  B.transport.onChannel((c) => accepted.push(c))
  // A linger far past the test's timeout: only the channels' events can end close() in time.
  const A = new UdpTransport({ identity: memoryIdentity(), timings: FAST, closeLingerMs: 60_000 })
  const ch = A.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  await nextEvent(ch, 'secure')
  ;(accepted[0] as UdpChannel).resume()
  ch.write(Buffer.alloc(50_000))
  const first = A.close()
  assert.equal(A.close(), first, 'the same promise')
  await first
  assert.ok(ch.isReleased)
  assert.equal(A.channelCount, 0)
})

test('the blocks that arrive in one turn are handed on as one data event, in order, before the end', { timeout: 10_000 }, async (t) => {
  const A = await node(t)
  const B = await node(t, { allowHalfOpen: true })
  const server = new Promise<UdpChannel>((resolve) => B.transport.onChannel(resolve))
  const client = A.transport.dial('127.0.0.1', B.transport.port, { remoteBoxId: B.identity.getBoxId() })
  client.write(Buffer.from('hello'))
  const ch = await server
  const events: string[] = []
  const got: Buffer[] = []
  ch.on('data', (d: Buffer) => {
    events.push(`data:${d.length}`)
    got.push(Buffer.from(d))
  })
  ch.on('end', () => events.push('end'))
  ch.resume()
  await waitUntil(() => ch.stats.bytesIn === 5, 5_000, 'the first bytes')
  // Eight blocks (the initial window) go in one burst and are read in one turn.
  const data = Buffer.from(Array.from({ length: 8 * 1024 }, (_, i) => i % 251))
  client.write(data)
  client.end()
  await waitUntil(() => events.includes('end'), 5_000, 'the end')
  assert.ok(Buffer.concat(got).equals(Buffer.concat([Buffer.from('hello'), data])), 'every byte, in order')
  assert.equal(events.at(-1), 'end')
  assert.ok(events.length - 1 <= 4, `8 blocks and the greeting in at most 4 data events, not one per datagram: ${events.join(' ')}`)
  ch.close()
})
