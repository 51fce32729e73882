/**
 * The connection layer: one secure channel per peer, by signId, and reliable delivery of
 * platform frames over it. This file only wires the parts together; each concern has its file:
 *
 * - sending (send.ts): the queue, message ids, the batch written once per turn, 0-RTT frames;
 * - delivery (delivery.ts): the persistent outbox, durable ids, end-to-end ACKs, the receiver's
 *   persistent record of ids, expiry, the stored nodeInfo of peers messages wait for;
 * - receiving (receive.ts, seen-ids.ts, frames.ts): frames, acknowledgements, duplicate ids;
 * - dialling (dial.ts): listening, the TCP/UDP race, accepting incoming channels;
 * - sessions (sessions.ts, session-choice.ts): which channel a peer uses, crossing dials;
 * - timers (timers.ts, timings.ts): expiry, keepalive, dead and idle channels, reconnect backoff;
 * - peers (peer.ts): each peer's state (idle, dialing, backoff, connected) and its messages;
 * - bounds (limits.ts, admission.ts, counters.ts): queue, frame and peer-table budgets (circles
 *   and strangers apart), handshake admission, and the counters of what was refused (stats());
 * - channels (channel.ts, tcp-channel.ts, udp-channel.ts, udp-channels.ts).
 *
 * Delivery: every DATA frame is acknowledged by the receiving platform; unacknowledged frames are
 * sent again, in order, on the next channel; receivers drop ids they have seen. Non-realtime
 * messages wait in the persistent outbox (with a storage) until acknowledged. `realtime`
 * messages are never resent: they go now, or fail.
 */
import { DeliveryError, MMError, StateError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import type { Logger } from '../logger.js'
import type { ConnectionInfoEntry, NodeInfo } from '../transports/connection-info.js'
import type { TcpListenOptions } from '../transports/tcp.js'
import type { UdpListenOptions } from '../transports/udp.js'
import type { ConnectionContext, ConnectionHost } from './context.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import { Delivery, type DeliveryOptions, type PendingMessage } from './delivery.js'
import { Dialer } from './dial.js'
import { DEFAULT_MAX_FRAME_BYTES } from './frames.js'
import type { AdmissionLimits } from './admission.js'
import { emptyCounts, type RefusalCounts } from './counters.js'
import {
  DEFAULT_MAX_QUEUED_BYTES,
  DEFAULT_MAX_QUEUED_MESSAGES,
  HIGH_WATER_BYTES,
  MAX_HELD_ACK_IDS,
  MAX_PEERS,
  MAX_STRANGER_PEERS,
  OUTGOING_SLACK_BYTES,
  PeerTable,
  STRANGER_FRAME_DEADLINE_MS,
  STRANGER_MAX_FRAME_BYTES,
  isStranger,
  type ConnectionLimits
} from './limits.js'
import type { OutgoingMessage, SendOptions } from './message-types.js'
import type { Peer } from './peer.js'
import { Receiver } from './receive.js'
import { Sender } from './send.js'
import { Sessions } from './sessions.js'
import { Timers } from './timers.js'
import { DEFAULT_TIMINGS, type ConnectionTimings } from './timings.js'

export type { Channel, ChannelState } from './channel.js'
export type { ConnectionHost, MessageFate } from './context.js'
export type { DeliveryOptions, PendingMessage } from './delivery.js'
export { DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_MESSAGES, MAX_PEERS } from './limits.js'
export type { RefusalCounts } from './counters.js'
export type { AdmissionLimits } from './admission.js'

export interface ConnectionManagerOptions {
  host: ConnectionHost
  identity: IdentityLike
  getNodeInfo(signId: string): Promise<NodeInfo>
  /** Called when dialling from a nodeInfo failed: it may be out of date. */
  forgetNodeInfo?(signId: string): void
  logger: Logger
  /** TCP listen options; false: do not listen (dial only). */
  tcp?: TcpListenOptions | false
  /** UDP listen options; false: no UDP at all. Default: all interfaces, a free port. */
  udp?: UdpListenOptions | false
  timings?: Partial<ConnectionTimings>
  maxFrameBytes?: number
  /** Per peer: most messages waiting (queued or unacknowledged). */
  maxQueuedMessages?: number
  /** Per peer: most bytes queued (ERR_QUEUE_FULL beyond); send() says false from 4 MiB or half this. */
  maxQueuedBytes?: number
  /** Most peers tracked at once (default MAX_PEERS); a message to one more is ERR_QUEUE_FULL. */
  maxPeers?: number
  /** Most strangers (peers in no circle) among them (default MAX_STRANGER_PEERS, at most maxPeers). */
  maxStrangerPeers?: number
  /** Largest frame a stranger may send (default 1 MiB). */
  strangerMaxFrameBytes?: number
  /** A stranger's frame, once begun, must be complete within this (default 10 s). */
  strangerFrameDeadlineMs?: number
  /** Per channel: ACKs held while the peer does not read (default 65,536); past it, closed. */
  maxHeldAckIds?: number
  /** Per channel: bytes waiting to go out (default maxFrameBytes + 8 MiB); past it, closed. */
  maxOutgoingBytes?: number
  /** Handshake admission per source address and in all (admission.ts). */
  admission?: Partial<AdmissionLimits>
  /** Accepted UDP sessions at most (default 4,096); past it a stranger's session makes room. */
  maxUdpSessions?: number
  /** Where the persistent outbox lives (open before start()); without one, sends wait in memory only. */
  storage?: PlatformStorage
  outbox?: DeliveryOptions
}

/** ConnectionManager.stats(): what the connection layer holds, and what it refused and why. */
export interface ConnectionStats {
  peers: number
  strangers: number
  connected: number
  /** Handshakes under way (TCP, before authentication). */
  handshaking: number
  refused: RefusalCounts
  /** Dropped handshake packets by reason (TCP responder). */
  tcpHandshakeDrops: Record<string, number>
  /** Dropped UDP datagrams by reason, and UDP sessions held. */
  udpDrops: Record<string, number>
  udpSessions: number
}

export class ConnectionManager implements ConnectionContext {
  readonly host: ConnectionHost
  readonly identity: IdentityLike
  readonly logger: Logger
  readonly timings: ConnectionTimings
  readonly limits: ConnectionLimits
  readonly peers = new Map<string, Peer>()
  readonly table: PeerTable
  readonly counts: RefusalCounts = emptyCounts()
  private readonly sender: Sender
  private readonly dialer: Dialer
  private readonly timers: Timers
  private readonly delivery: Delivery
  private running = false
  private stopped = false
  private closing: Promise<void> | undefined

  constructor(options: ConnectionManagerOptions) {
    this.host = options.host
    this.identity = options.identity
    this.logger = options.logger
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings }
    const maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    const maxPeers = options.maxPeers ?? MAX_PEERS
    this.limits = {
      maxFrameBytes,
      maxQueuedMessages: options.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES,
      maxQueuedBytes,
      highWaterBytes: Math.min(HIGH_WATER_BYTES, maxQueuedBytes / 2),
      maxPeers,
      maxStrangerPeers: Math.min(maxPeers, options.maxStrangerPeers ?? Math.min(MAX_STRANGER_PEERS, Math.ceil(maxPeers * 0.8))),
      strangerMaxFrameBytes: options.strangerMaxFrameBytes ?? STRANGER_MAX_FRAME_BYTES,
      strangerFrameDeadlineMs: options.strangerFrameDeadlineMs ?? STRANGER_FRAME_DEADLINE_MS,
      maxHeldAckIds: options.maxHeldAckIds ?? MAX_HELD_ACK_IDS,
      maxOutgoingBytes: options.maxOutgoingBytes ?? maxFrameBytes + OUTGOING_SLACK_BYTES
    }
    this.table = new PeerTable(this.peers, this.host, this.limits, (peer) => this.evict(peer))
    // Parts reach the dialer and the timers through these (they are made after the sender).
    const dialling = { ensureChannel: (peer: Peer) => this.dialer.ensureChannel(peer) }
    const reconnecting = { timersSessionLost: (peer: Peer) => this.timers.timersSessionLost(peer) }
    this.sender = new Sender(this, dialling)
    this.delivery = new Delivery(this, { dialling, flushing: this.sender }, options.storage, options.outbox)
    if (options.storage) this.sender.durable = this.delivery
    const receiver = new Receiver(this, this.sender, this.sender.durable)
    const sessions = new Sessions(this, this.sender, receiver, reconnecting)
    this.timers = new Timers(this, this.sender, dialling)
    // Peers we owe messages to are dialled from their stored nodeInfo too (delivery.ts).
    const dialOptions = {
      ...options,
      getNodeInfo: (signId: string) => this.delivery.nodeInfoFor(signId, options.getNodeInfo),
      forgetNodeInfo: (signId: string) => {
        this.delivery.dialFailed(signId)
        options.forgetNodeInfo?.(signId)
      }
    }
    this.dialer = new Dialer(this, dialOptions, { sender: this.sender, sessions, reconnecting })
  }

  /** Listening: dials may begin. */
  get started(): boolean {
    return this.running
  }

  get closed(): boolean {
    return this.stopped
  }

  /** Starts listening (once the identity is known); returns the connectionInfo to publish. */
  async start(): Promise<ConnectionInfoEntry[]> {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the connection manager is closed')
    await this.delivery.open()
    const info = await this.dialer.listen()
    this.timers.start()
    this.running = true
    this.delivery.resume()
    for (const peer of this.peers.values()) if (peer.waiting) this.dialer.ensureChannel(peer)
    return info
  }

  /** The persistent outbox: what is pending, cancel one, expire now (delivery.ts). */
  get outbox(): { list(limit?: number): Promise<PendingMessage[]>; cancel(destination: string, id: string): Promise<boolean>; expire(): Promise<number> } {
    const d = this.delivery
    return { list: (limit) => d.list(limit), cancel: (destination, id) => d.cancel(destination, id), expire: () => d.expire() }
  }

  /**
   * Queues a message for a remote signId. Returns false when the peer's queue is past its
   * high-water mark (the message is still taken) or the message was refused; a `drain` for that
   * destination follows every false once there is room again (send.ts).
   * @throws InvalidArgumentError for a destination that is not a signId or a payload that is not
   *   a string or bytes, or a message larger than the frame bound.
   * @throws StateError (ERR_CLOSED) after close().
   */
  send(message: OutgoingMessage, options: SendOptions): boolean {
    return this.sender.send(message, options)
  }

  /** signIds of the peers with an open channel. */
  connectedPeers(): string[] {
    return [...this.peers.values()].filter((p) => p.state === 'connected').map((p) => p.signId)
  }

  /** Closes the sessions with `signId`, if any. Messages still waiting make it reconnect. */
  async disconnect(signId: string): Promise<void> {
    const peer = this.peers.get(signId)
    if (!peer) return
    // What we owe it goes first: the ACKs of messages handled here, once their ids are recorded.
    // Dropped with the channel, they would make it send those messages again on the next session.
    await this.delivery.recorded(signId)
    this.sender.writeNow(peer)
    await Promise.all([...peer.channels].map((channel) => channel.close()))
  }

  /**
   * What the connection layer holds, and what it refused, closed or evicted and why (a plain
   * object: an operator sees an attack here).
   */
  stats(): ConnectionStats {
    let connected = 0
    let strangers = 0
    for (const peer of this.peers.values()) {
      if (peer.state === 'connected') connected++
      if (isStranger(this.host, peer.signId)) strangers++
    }
    const udp = this.dialer.udpEndpoint
    return {
      peers: this.peers.size,
      strangers,
      connected,
      handshaking: this.dialer.handshakesUnderWay,
      refused: { ...this.counts },
      tcpHandshakeDrops: { ...this.dialer.handshakeDrops },
      udpDrops: udp ? { ...udp.drops } : {},
      udpSessions: udp ? udp.sessionCount : 0
    }
  }

  /** A stranger leaves the table to make room: its messages fail, its channels close. */
  private evict(peer: Peer): void {
    this.counts.strangerEvicted++
    const why = new DeliveryError('ERR_UNREACHABLE', `${peer.signId} was evicted from the peer table to make room`)
    for (const item of [...peer.queue, ...peer.inflight.values()]) this.sender.fail(item, why)
    peer.queue = []
    peer.queuedBytes = 0
    peer.inflight.clear()
    peer.pendingAcks.clear()
    const channels = [...peer.channels]
    const announce = peer.state === 'connected'
    peer.stop()
    for (const channel of channels) void channel.close(why)
    if (announce) this.host.emit('disconnected', peer.signId)
  }

  /** Dropped-packet counters of the handshake responder (tests, stats). */
  get handshakeDrops(): Readonly<Record<string, number>> {
    return this.dialer.handshakeDrops
  }

  /**
   * Closes every channel and socket, fails what still waits. Idempotent: repeat callers get the
   * same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    this.stopped = true
    this.timers.stop()
    const closing = new MMError('ERR_CLOSED', 'the platform closed before the message was delivered')
    for (const peer of this.peers.values()) {
      for (const item of [...peer.queue, ...peer.inflight.values()]) this.sender.fail(item, closing)
      peer.queue = []
      peer.inflight.clear()
      for (const channel of [...peer.channels]) void channel.close()
      peer.stop()
    }
    await this.dialer.close()
    await this.delivery.close()
  }
}
