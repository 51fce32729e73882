/**
 * A channel starts paused (so that the connection layer can attach before any data is emitted)
 * and holds what arrives until resume(), at most 1 MiB: a peer that sends more before the channel
 * is taken up is closed with ERR_PROTOCOL, over TCP and over UDP. Up to the bound, nothing is
 * lost: resume() hands it all over.
 * (Channel level: TCP's channel is src/connections/secure-channel.ts, UDP's udp-channel.ts.)
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { ServerHandshake } from '../src/curvecp/handshake.js'
import { STREAM_LIMITS } from '../src/curvecp/packets.js'
import { TcpChannel } from '../src/connections/tcp-channel.js'
import { UdpChannels as UdpTransport } from '../src/connections/udp-channels.js'
import { TcpListener, dialTcp } from '../src/transports/tcp.js'
import { memoryIdentity, nextEvent, waitUntil } from './helpers/index.js'

const MiB = 1024 * 1024

interface Held {
  write(data: Buffer): void
  /** The server's end, paused. */
  server: { on(e: 'close', l: (err?: Error) => void): unknown; once(e: string, l: (...a: unknown[]) => void): unknown; on(e: 'data', l: (d: Buffer) => void): unknown; resume(): void; state: string }
  serverBytesIn(): number
}

/** A TCP channel pair; the server's channel is never resumed unless the test does. */
async function tcpPair(t: TestContext): Promise<Held> {
  const server = memoryIdentity()
  const client = memoryIdentity()
  const handshake = new ServerHandshake({ identity: server, limits: STREAM_LIMITS, auth: 'signid' })
  let accepted: TcpChannel | undefined
  const listener = new TcpListener((socket) => {
    accepted = TcpChannel.server(socket, { handshake, handshakeTimeoutMs: 5_000 })
  })
  await listener.listen({ host: '127.0.0.1' })
  const socket = await dialTcp('127.0.0.1', listener.port)
  const ch = TcpChannel.client(socket, { identity: client, remoteSignId: server.getSignId(), remoteBoxId: server.getBoxId(), limits: STREAM_LIMITS, handshakeTimeoutMs: 5_000 })
  ch.on('close', () => {})
  await nextEvent(ch, 'secure', 5_000)
  await waitUntil(() => accepted?.state === 'open', 5_000, 'the server channel to open')
  const s = accepted as TcpChannel
  t.after(async () => {
    ch.close()
    s.close()
    await listener.close()
    handshake.close()
  })
  return { write: (d) => void ch.write(d), server: s, serverBytesIn: () => s.stats.bytesIn }
}

/** A UDP channel pair; the server's channel is never resumed unless the test does. */
async function udpPair(t: TestContext): Promise<Held> {
  const timings = { helloRetryMs: 50, handshakeTimeoutMs: 5_000, timeWaitMs: 50 }
  const serverId = memoryIdentity()
  const server = new UdpTransport({ identity: serverId, timings })
  const client = new UdpTransport({ identity: memoryIdentity(), timings })
  t.after(() => Promise.all([client.close(), server.close()]))
  await server.listen({ host: '127.0.0.1' })
  const accepted = new Promise<import('../src/connections/udp-channel.js').UdpChannel>((resolve) => server.onChannel(resolve))
  const ch = client.dial('127.0.0.1', server.port, { remoteBoxId: serverId.getBoxId() })
  ch.on('close', () => {})
  await nextEvent(ch, 'secure', 5_000)
  const s = await accepted
  return { write: (d) => void ch.write(d), server: s, serverBytesIn: () => s.stats.bytesIn }
}

for (const [name, pair] of [
  ['tcp', tcpPair],
  ['udp', udpPair]
] as const) {
  test(`${name}: up to 1 MiB is held while paused, and all of it comes out on resume()`, { timeout: 20_000 }, async (t) => {
    const { write, server, serverBytesIn } = await pair(t)
    const sent = MiB - 64 * 1024
    for (let at = 0; at < sent; at += 32 * 1024) write(Buffer.alloc(32 * 1024, at / 1024))
    await waitUntil(() => serverBytesIn() >= sent, 10_000, `${sent} bytes to arrive at the paused channel`)
    assert.equal(server.state, 'open')
    let got = 0
    server.on('data', (d: Buffer) => (got += d.length))
    server.resume()
    assert.equal(got, sent)
  })

  test(`${name}: more than 1 MiB before resume() closes the channel with ERR_PROTOCOL`, { timeout: 20_000 }, async (t) => {
    const { write, server } = await pair(t)
    const closed = new Promise<Error | undefined>((resolve) => server.on('close', resolve))
    for (let at = 0; at < MiB + 256 * 1024; at += 32 * 1024) write(Buffer.alloc(32 * 1024, 7))
    const err = await Promise.race([closed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the paused channel did not close within 5 s')), 5_000).unref())])
    assert.equal((err as { code?: string } | undefined)?.code, 'ERR_PROTOCOL', String(err))
    assert.match(String(err?.message), /more than 1048576 bytes/)
    assert.notEqual(server.state, 'open')
  })
}
