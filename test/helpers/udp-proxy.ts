/**
 * A UDP relay on loopback that plays a NAT: the client talks to the relay's port, and the relay
 * forwards to the server from an outside socket of its own. `rebind()` moves to a new outside
 * socket (a new source port, as a NAT does when its mapping expires) and closes the old one, so
 * the server's replies reach the client only if the server follows the client to its new port.
 */
import dgram from 'node:dgram'

export class UdpRebindingProxy {
  /** Datagrams forwarded, per direction, and outside ports used (newest last). */
  readonly stats = { toServer: 0, toClient: 0, outsidePorts: [] as number[] }
  private readonly inside = dgram.createSocket('udp4')
  private outside: dgram.Socket | undefined
  private client: { address: string; port: number } | undefined

  constructor(private readonly server: { address: string; port: number }) {
    this.inside.on('message', (packet, from) => {
      this.client = { address: from.address, port: from.port }
      this.stats.toServer++
      this.outside?.send(packet, this.server.port, this.server.address)
    })
  }

  /** Listens on a free loopback port for the client; returns it. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.inside.bind(0, '127.0.0.1', resolve))
    await this.rebind()
    return this.inside.address().port
  }

  /** Forwards from a new outside port from now on; the old one is closed (its replies are lost). */
  async rebind(): Promise<number> {
    const next = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => next.bind(0, '127.0.0.1', resolve))
    next.on('message', (packet) => {
      if (!this.client) return
      this.stats.toClient++
      this.inside.send(packet, this.client.port, this.client.address)
    })
    const old = this.outside
    this.outside = next
    if (old) await new Promise<void>((resolve) => old.close(() => resolve()))
    const port = next.address().port
    this.stats.outsidePorts.push(port)
    return port
  }

  async close(): Promise<void> {
    const sockets = [this.inside, this.outside].filter((s): s is dgram.Socket => s !== undefined)
    this.outside = undefined
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }
}
