// A dial's TCP socket is handed over while it still connects (src/transports/tcp.ts connectTcp,
// src/connections/dial.ts): the client's Hello waits in the socket and leaves from within its
// connect event, a failed connect closes the channel at once with ERR_UNREACHABLE, and a channel
// closed before its socket connected does not wait for a peer that never saw it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { ServerHandshake } from '../src/curvecp/handshake.js'
import { STREAM_LIMITS } from '../src/curvecp/packets.js'
import { TcpListener, connectTcp } from '../src/transports/tcp.js'
import { TcpChannel } from '../src/connections/tcp-channel.js'
import { memoryIdentity, nextEvent } from './helpers/index.js'

const HELLO_ON_THE_WIRE = 4 + 224 // length prefix + Hello

test('the Hello waits in a socket that still connects, and the handshake completes with the Initiate\'s bytes', async () => {
  const a = memoryIdentity()
  const b = memoryIdentity()
  const handshake = new ServerHandshake({ identity: b, limits: STREAM_LIMITS, auth: 'signid' })
  const got: Buffer[] = []
  let accepted!: (c: TcpChannel) => void
  const serverChannel = new Promise<TcpChannel>((resolve) => (accepted = resolve))
  const listener = new TcpListener((socket) => {
    const ch = TcpChannel.server(socket, { handshake })
    ch.on('data', (d: Buffer) => got.push(d))
    ch.once('secure', () => queueMicrotask(() => ch.resume()))
    accepted(ch)
  })
  await listener.listen({ host: '127.0.0.1' })
  const socket = connectTcp('127.0.0.1', listener.port)
  assert.equal(socket.remote, `tcp:127.0.0.1:${listener.port}`)
  const client = TcpChannel.client(socket, { identity: a, remoteSignId: b.getSignId(), remoteBoxId: b.getBoxId(), limits: STREAM_LIMITS })
  client.write(Buffer.from('early'))
  // Nothing can have left yet: the connect syscall itself runs on node:net's next tick.
  assert.equal(socket.bufferedBytes, HELLO_ON_THE_WIRE, 'the Hello is queued in the connecting socket')
  const server = await serverChannel
  await nextEvent(server, 'secure')
  await new Promise((r) => setTimeout(r, 10))
  assert.equal(Buffer.concat(got).toString(), 'early')
  assert.equal(server.remoteSignId, a.getSignId())
  await client.close()
  await server.close()
  await listener.close()
  handshake.close()
})

test('a refused connect closes the channel at once with ERR_UNREACHABLE', async () => {
  // A port that was just free: nothing listens there now.
  const probe = net.createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()))
  const port = (probe.address() as net.AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  const a = memoryIdentity()
  const b = memoryIdentity()
  const started = Date.now()
  const client = TcpChannel.client(connectTcp('127.0.0.1', port), { identity: a, remoteSignId: b.getSignId(), remoteBoxId: b.getBoxId(), limits: STREAM_LIMITS, handshakeTimeoutMs: 10_000 })
  const [err] = (await nextEvent(client, 'close')) as [Error & { code?: string }]
  assert.equal(err?.code, 'ERR_UNREACHABLE', String(err))
  assert.match(err.message, /tcp connect to 127\.0\.0\.1:\d+ failed/)
  assert.ok(Date.now() - started < 2_000, 'not after the handshake timeout')
  assert.equal(client.state, 'closed')
})

test('a channel closed while its socket still connects is gone at once, not after the graceful-close timer', async () => {
  // A listener that accepts and never answers (a silent server).
  const held: net.Socket[] = []
  const silent = net.createServer((s) => held.push(s))
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()))
  const port = (silent.address() as net.AddressInfo).port
  const a = memoryIdentity()
  const b = memoryIdentity()
  const socket = connectTcp('127.0.0.1', port)
  const client = TcpChannel.client(socket, { identity: a, remoteSignId: b.getSignId(), remoteBoxId: b.getBoxId(), limits: STREAM_LIMITS })
  const started = Date.now()
  await client.close()
  await socket.close() // the socket's own close: resolves once it is destroyed
  assert.ok(Date.now() - started < 1_000, `closed in ${Date.now() - started} ms`)
  for (const s of held) s.destroy()
  await new Promise<void>((r) => silent.close(() => r()))
})
