/**
 * Stable addresses: a node listens on the same TCP and UDP ports across restarts, so peers that
 * knew its nodeInfo can reach it again without a lookup. The ports are chosen once (free ports),
 * stored under {@link PORTS_KEY}, and reused on the next start. A stored port that is busy now
 * falls back to a new free port (logged); the new one is stored and published as usual. A port
 * given in the listen options always wins and is not replaced.
 *
 * A stored port is tried by binding it briefly before the transports listen; another process can
 * still take it in between (then start fails with ERR_TRANSPORT, as with an explicit port).
 */
import net from 'node:net'
import dgram from 'node:dgram'
import type { Logger } from '../logger.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import type { TcpListenOptions } from '../transports/tcp.js'
import type { UdpListenOptions } from '../transports/udp.js'
import type { ConnectionInfoEntry } from '../transports/connection-info.js'

/** Storage key of the remembered ports: JSON `{ tcp?: number, udp?: number }`. */
export const PORTS_KEY = 'listen.ports'

type Transport = 'tcp' | 'udp'
type StoredPorts = Partial<Record<Transport, number>>

/** Listen options the platform owns and hands to the transports (mutated by {@link StablePorts.prepare}). */
export interface ListenOptions {
  tcp: TcpListenOptions | false
  udp: UdpListenOptions | false
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536
}

/** True when `port` can be bound on `host` now (the probe is closed again at once). */
export function portIsFree(transport: Transport, host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (transport === 'tcp') {
      const server = net.createServer()
      server.once('error', () => resolve(false))
      server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)))
    } else {
      const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4')
      socket.once('error', () => {
        socket.close()
        resolve(false)
      })
      socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolve(true)))
    }
  })
}

export class StablePorts {
  private stored: StoredPorts = {}
  /** Transports whose port the caller gave: neither replaced nor stored. */
  private readonly explicit = new Set<Transport>()

  constructor(
    private readonly storage: PlatformStorage,
    private readonly logger: Logger
  ) {}

  /**
   * Fills in the stored port of each listening transport whose options name none, when that port
   * is free now; else leaves it to a new free port.
   */
  async prepare(listen: ListenOptions): Promise<void> {
    this.stored = this.parseStored(await this.storage.get(PORTS_KEY))
    for (const transport of ['tcp', 'udp'] as const) {
      const options = listen[transport]
      if (options === false) continue
      if (options.port !== undefined) {
        this.explicit.add(transport)
        continue
      }
      const port = this.stored[transport]
      if (port === undefined) continue
      if (await portIsFree(transport, options.host ?? '0.0.0.0', port)) {
        options.port = port
      } else {
        this.logger.warn({ transport, port }, `the stored ${transport} port ${port} is busy: listening on a new free port, which will be stored and published`)
      }
    }
  }

  /** Stores the ports the transports listen on now, when they differ from the stored ones. */
  async remember(connectionInfo: ConnectionInfoEntry[]): Promise<void> {
    const next: StoredPorts = { ...this.stored }
    for (const transport of ['tcp', 'udp'] as const) {
      if (this.explicit.has(transport)) continue
      const entry = connectionInfo.find((e) => e.transportType === transport && isPort(e.transportInfo.port))
      if (entry) next[transport] = entry.transportInfo.port as number
    }
    if (next.tcp === this.stored.tcp && next.udp === this.stored.udp) return
    await this.storage.put(PORTS_KEY, JSON.stringify(next))
    this.stored = next
  }

  private parseStored(raw: string | undefined): StoredPorts {
    if (raw === undefined) return {}
    try {
      const value = JSON.parse(raw) as Record<string, unknown>
      const out: StoredPorts = {}
      if (isPort(value.tcp)) out.tcp = value.tcp
      if (isPort(value.udp)) out.udp = value.udp
      return out
    } catch (err) {
      // Only costs new ports, which are then stored again; said, not silent.
      this.logger.warn({ err }, `the stored listening ports (${PORTS_KEY}) do not parse: they are lost, new free ports will be chosen and stored`)
      return {}
    }
  }
}
