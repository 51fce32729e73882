/**
 * What `mm-platform start` runs beside the platform: mDNS and Kademlia (on by default), the
 * Mainline directory (only when asked: it reaches the public DHT unless given a private
 * bootstrap), and the control socket. close() stops them in reverse order.
 */
import type { Platform } from '../../platform/platform.js'
import type { NodeInfo } from '../../platform/node-info.js'
import type { Logger } from '../../logger.js'
import { MulticastDNS } from '../../services/mdns/mdns.js'
import { Kademlia } from '../../services/kademlia/kademlia.js'
import { ControlServer, type KnownPeersSource } from '../control-socket.js'

export interface NodeServiceOptions {
  dataDir: string
  mdns: boolean
  /** Interface address for mDNS (binds 0.0.0.0 then, as a network namespace needs). */
  mdnsInterface?: string
  kademlia: boolean
  /** Signed nodeInfos to start the DHT from. */
  bootstrap: NodeInfo[]
  mainline: boolean
  /** host:port of Mainline DHT nodes to start from (default: the public bootstrap). */
  mainlineBootstrap?: string[]
  logger: Logger
  /** Called for every peer a service finds. */
  onPeer?: (signId: string, via: string) => void
  /** Called when our record is (re)published on the Mainline DHT. */
  onPublished?: (seq: number) => void
}

export interface NodeServices {
  control: ControlServer
  close(): Promise<void>
}

export async function startNodeServices(platform: Platform, options: NodeServiceOptions): Promise<NodeServices> {
  const closers: Array<() => Promise<void>> = []
  const sources: KnownPeersSource[] = []
  try {
    if (options.mdns) {
      const mdns = new MulticastDNS({
        platform,
        logger: options.logger,
        ...(options.mdnsInterface ? { interface: options.mdnsInterface, bind: '0.0.0.0' } : {})
      })
      mdns.on('peer', (n: NodeInfo) => options.onPeer?.(n.signId, 'mdns'))
      sources.push({ name: 'mdns', peers: () => mdns.peers() })
      closers.push(() => mdns.close())
    }
    if (options.kademlia) {
      const dht = new Kademlia({ platform, storage: platform.storage.store, bootstrap: options.bootstrap, logger: options.logger })
      dht.on('found', (n: NodeInfo) => options.onPeer?.(n.signId, 'kademlia'))
      sources.push({ name: 'kademlia', peers: () => dht.contacts() })
      closers.push(() => dht.close())
    }
    if (options.mainline) {
      const { Mainline } = await import('../../services/mainline/mainline.js')
      const mainline = new Mainline({ platform, logger: options.logger, bootstrap: options.mainlineBootstrap })
      mainline.on('published', (seq: number) => options.onPublished?.(seq))
      mainline.on('peer', (n: NodeInfo) => options.onPeer?.(n.signId, 'mainline'))
      sources.push({ name: 'mainline', peers: () => mainline.peers() })
      closers.push(() => mainline.close())
    }
    const control = await ControlServer.listen({ platform, dataDir: options.dataDir, sources, logger: options.logger })
    closers.push(() => control.close())
    return {
      control,
      async close() {
        for (const c of closers.reverse()) await c().catch((err: unknown) => options.logger.warn({ err }, 'a service did not close cleanly'))
      }
    }
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => {})
    throw err
  }
}
