// One close() style for channels (src/connections/channel.ts): idempotent, one shared promise
// for every caller, one `close` event.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ServerHandshake } from '../src/curvecp/handshake.js'
import { STREAM_LIMITS } from '../src/curvecp/packets.js'
import { memorySocketPair } from '../src/transports/packet-socket.js'
import { TcpChannel } from '../src/connections/tcp-channel.js'
import { memoryIdentity, nextEvent } from './helpers/index.js'

async function pair(): Promise<[TcpChannel, TcpChannel, ServerHandshake]> {
  const a = memoryIdentity()
  const b = memoryIdentity()
  const [sa, sb] = memorySocketPair()
  const handshake = new ServerHandshake({ identity: b, limits: STREAM_LIMITS, auth: 'signid' })
  const server = TcpChannel.server(sb, { handshake })
  const client = TcpChannel.client(sa, { identity: a, remoteSignId: b.getSignId(), remoteBoxId: b.getBoxId(), limits: STREAM_LIMITS })
  await Promise.all([nextEvent(client, 'secure'), nextEvent(server, 'secure')])
  return [client, server, handshake]
}

test('close() returns one promise to every caller; the channel emits `close` once', async (t) => {
  const [client, server, handshake] = await pair()
  t.after(() => handshake.close())
  let closes = 0
  client.on('close', () => closes++)
  const serverClosed = nextEvent(server, 'close')
  const first = client.close()
  assert.equal(client.close(new Error('again')), first, 'the same promise')
  await first
  assert.equal(client.state, 'closed')
  assert.equal(closes, 1)
  assert.equal(client.close(), first, 'still the same promise after it resolved')
  await serverClosed
  assert.equal(server.state, 'closed')
  await server.close() // closed by its peer: close() resolves at once
})
