/**
 * Two TcpChannels over real TCP on loopback, for tests of the channel itself: a client whose
 * `first` bytes (if any) are written before the handshake (so they ride in the Initiate), and the
 * server's channel, resumed once secure as the connection layer does.
 */
import { ServerHandshake } from '../../src/curvecp/handshake.js'
import { STREAM_LIMITS } from '../../src/curvecp/packets.js'
import { TcpListener, dialTcp } from '../../src/transports/tcp.js'
import { TcpChannel } from '../../src/connections/tcp-channel.js'
import { memoryIdentity } from './index.js'

export interface TcpChannelPair {
  client: TcpChannel
  server: TcpChannel
  /** Closes both channels, the listener and the handshake's keys. */
  done: () => Promise<void>
}

export async function tcpChannelPair(first?: string): Promise<TcpChannelPair> {
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
  if (first !== undefined) client.write(Buffer.from(first))
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
