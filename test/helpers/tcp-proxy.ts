// A man in the middle for TCP transport tests: forwards length-prefixed CurveCP packets between a
// client and a server, records them, and lets a test drop, change or inject packets.
import net from 'node:net'
import { LengthPrefixDecoder, encodeLengthPrefix } from '../../src/transports/length-prefix.js'
import { TCP_MAX_PACKET_BYTES } from '../../src/transports/tcp.js'

export type Direction = 'toServer' | 'toClient'
export interface ProxyConnection {
  index: number
  client: net.Socket
  server: net.Socket
  /** Packets seen on this connection, in order, per direction. */
  toServer: Buffer[]
  toClient: Buffer[]
  /** Writes a packet as if it came from the other side. */
  inject(direction: Direction, packet: Buffer): void
}

/** Returns the packet to forward (possibly changed), or null to drop it. */
export type PacketHook = (packet: Buffer, direction: Direction, conn: ProxyConnection) => Buffer | null

export class TcpProxy {
  readonly connections: ProxyConnection[] = []
  hook: PacketHook = (p) => p
  private readonly server: net.Server
  private readonly sockets = new Set<net.Socket>()

  constructor(private readonly target: { address: string; port: number }) {
    this.server = net.createServer((client) => this.onClient(client))
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return (this.server.address() as net.AddressInfo).port
  }

  private onClient(client: net.Socket): void {
    const server = net.connect(this.target.port, this.target.address)
    for (const s of [client, server]) {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
      s.on('error', () => {})
    }
    const conn: ProxyConnection = {
      index: this.connections.length,
      client,
      server,
      toServer: [],
      toClient: [],
      inject: (direction, packet) => {
        const to = direction === 'toServer' ? server : client
        if (!to.destroyed) to.write(Buffer.concat([encodeLengthPrefix(packet.length), packet]))
      }
    }
    this.connections.push(conn)
    const pipe = (from: net.Socket, to: net.Socket, direction: Direction): void => {
      const decoder = new LengthPrefixDecoder(TCP_MAX_PACKET_BYTES)
      from.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk, (packet) => {
            const copy = Buffer.from(packet)
            conn[direction].push(copy)
            const out = this.hook(Buffer.from(copy), direction, conn)
            if (out && !to.destroyed) to.write(Buffer.concat([encodeLengthPrefix(out.length), out]))
          })
        } catch {
          from.destroy()
          to.destroy()
        }
      })
      from.on('close', () => to.destroy())
    }
    pipe(client, server, 'toServer')
    pipe(server, client, 'toClient')
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** Sends raw packets to a TCP endpoint and collects what comes back, for replay attacks. */
export async function replayPackets(address: string, port: number, packets: Buffer[], settleMs = 150): Promise<Buffer[]> {
  const socket = net.connect(port, address)
  socket.on('error', () => {})
  const received: Buffer[] = []
  const decoder = new LengthPrefixDecoder(TCP_MAX_PACKET_BYTES)
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk, (p) => received.push(Buffer.from(p)))
    } catch {
      socket.destroy()
    }
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  for (const p of packets) {
    socket.write(Buffer.concat([encodeLengthPrefix(p.length), p]))
    await new Promise((r) => setTimeout(r, 5))
  }
  await new Promise((r) => setTimeout(r, settleMs))
  socket.destroy()
  return received
}
