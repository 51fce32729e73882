// The TCP server's first Message (src/connections/tcp-channel.ts): when the Initiate carried
// bytes, the server's answer to them is its first Message (no empty one written ahead of it);
// with nothing to answer, an empty one follows after a turn, so the client may send on.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ServerHandshake } from '../src/curvecp/handshake.js'
import { STREAM_LIMITS } from '../src/curvecp/packets.js'
import { TcpListener, dialTcp } from '../src/transports/tcp.js'
import { TcpChannel } from '../src/connections/tcp-channel.js'
import { memoryIdentity, nextEvent } from './helpers/index.js'

/** A client channel over real TCP with `first` written before the handshake (so in the Initiate). */
async function dialled(first: string): Promise<{ client: TcpChannel; server: TcpChannel; done: () => Promise<void> }> {
  const a = memoryIdentity()
  const b = memoryIdentity()
  const handshake = new ServerHandshake({ identity: b, limits: STREAM_LIMITS, auth: 'signid' })
  let accepted!: (c: TcpChannel) => void
  const serverChannel = new Promise<TcpChannel>((resolve) => (accepted = resolve))
  const listener = new TcpListener((socket) => {
    const ch = TcpChannel.server(socket, { handshake })
    // As the connection layer does: resumed once secure (the channel joined its peer).
    ch.once('secure', () => queueMicrotask(() => ch.resume()))
    accepted(ch)
  })
  await listener.listen({ host: '127.0.0.1' })
  const client = TcpChannel.client(await dialTcp('127.0.0.1', listener.port), { identity: a, remoteSignId: b.getSignId(), remoteBoxId: b.getBoxId(), limits: STREAM_LIMITS })
  client.write(Buffer.from(first))
  const server = await serverChannel
  return {
    client,
    server,
    done: async () => {
      await client.close()
      await server.close()
      await listener.close()
      handshake.close()
    }
  }
}

test('a server answering the bytes of the Initiate within the turn writes no empty Message ahead of its answer', async () => {
  const s = await dialled('ping')
  s.server.on('data', () => s.server.write(Buffer.from('pong')))
  const got: Buffer[] = []
  s.client.on('data', (d: Buffer) => got.push(d))
  s.client.resume()
  await nextEvent(s.client, 'secure')
  await new Promise((r) => setTimeout(r, 20))
  assert.equal(Buffer.concat(got).toString(), 'pong', 'the answer opened the session')
  assert.equal(s.server.stats.packetsOut, 2, 'Cookie and the answer only')
  assert.equal(s.client.stats.packetsIn, 2)
  await s.done()
})

test('a server with nothing to answer writes an empty Message after a turn: the client may send on', async () => {
  const s = await dialled('ping')
  const got: Buffer[] = []
  s.server.on('data', (d: Buffer) => got.push(d))
  await nextEvent(s.client, 'secure')
  assert.equal(s.server.stats.packetsOut, 2, 'Cookie and the empty Message')
  s.client.write(Buffer.from(' and more'))
  const deadline = Date.now() + 5_000
  while (Buffer.concat(got).toString() !== 'ping and more' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  assert.equal(Buffer.concat(got).toString(), 'ping and more')
  await s.done()
})
