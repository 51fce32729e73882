/**
 * An in-process lossy UDP link for tests (there is no netem here): wraps the endpoint's socket
 * and drops a seeded fraction of the datagrams it sends and receives, or the ones a predicate
 * picks. Also records datagrams, for replay tests.
 */
import type { DatagramSocket } from '../../src/transports/udp.js'
import { seededRandom } from './udp-virtual.js'

export interface LossyOptions {
  /** Fraction of datagrams dropped each way, 0..1. */
  loss?: number
  seed?: number
  /** Drops what it returns true for (on top of `loss`). */
  drop?: (packet: Buffer, direction: 'in' | 'out') => boolean
  /** Keeps a copy of every datagram sent (bounded by `recordLimit`). */
  record?: boolean
  recordLimit?: number
}

export interface LossyLink {
  /** Pass as the endpoint's `wrapSocket` option. */
  wrap: (socket: DatagramSocket) => DatagramSocket
  readonly stats: { sent: number; received: number; droppedOut: number; droppedIn: number }
  /** Datagrams sent, with their destination (when `record`). */
  readonly sentLog: Array<{ packet: Buffer; port: number; address: string }>
  /** The wrapped socket, once bound: send raw datagrams through it (replays). */
  socket: DatagramSocket | undefined
}

export function lossyLink(options: LossyOptions = {}): LossyLink {
  const random = seededRandom(options.seed ?? 1)
  const loss = options.loss ?? 0
  const limit = options.recordLimit ?? 10_000
  const link: LossyLink = {
    stats: { sent: 0, received: 0, droppedOut: 0, droppedIn: 0 },
    sentLog: [],
    socket: undefined,
    wrap(raw: DatagramSocket): DatagramSocket {
      link.socket = raw
      return {
        send(packet, port, address) {
          link.stats.sent++
          if (options.record && link.sentLog.length < limit) link.sentLog.push({ packet: Buffer.from(packet), port, address })
          if (random() < loss || options.drop?.(packet, 'out')) {
            link.stats.droppedOut++
            return
          }
          raw.send(packet, port, address)
        },
        onMessage(listener) {
          raw.onMessage((packet, port, address) => {
            link.stats.received++
            if (random() < loss || options.drop?.(packet, 'in')) {
              link.stats.droppedIn++
              return
            }
            listener(packet, port, address)
          })
        },
        address: () => raw.address(),
        close: () => raw.close()
      }
    }
  }
  return link
}
