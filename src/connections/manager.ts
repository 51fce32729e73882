/**
 * The connection layer: one secure channel per peer, by signId, and reliable delivery of
 * platform frames over it.
 *
 * - Dialling: the directory gives the peer's nodeInfo; every dialable connectionInfo entry is
 *   tried at once and the first authenticated channel wins; the rest are closed.
 * - Crossing dials: when two channels to one peer are up, both sides keep the one dialled by the
 *   node with the smaller signId (equal: the newer), so both keep the same one.
 * - Delivery: every DATA frame is acknowledged by the receiving platform; unacknowledged frames
 *   are sent again, in order, on the next channel; receivers drop ids they have seen.
 *   `realtime` messages are never resent: they go now, or fail.
 * - Bounds: queue length and bytes per peer, frame size, handshake time; back-pressure from the
 *   socket stops the queue until it drains.
 * - Timers (timings.ts): keepalive PINGs, dead-channel detection, idle close, reconnect backoff,
 *   expiry; all from one tick, all released by close().
 */
import { DeliveryError, InvalidArgumentError, MMError, ProtocolError, StateError, describe } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import { parseId } from '../identity/ids.js'
import { signPublicToBoxPublic, randomBytes } from '../crypto/sodium.js'
import { ServerHandshake } from '../curvecp/handshake.js'
import { STREAM_LIMITS } from '../curvecp/packets.js'
import type { Logger } from '../logger.js'
import type { Message, OutgoingMessage, Scope, SendOptions } from './message-types.js'
import type { ConnectionInfoEntry, NodeInfo } from '../transports/connection-info.js'
import { TcpListener, dialTcp, tcpTarget, type TcpListenOptions } from '../transports/tcp.js'
import type { PacketSocket } from '../transports/packet-socket.js'
import { FRAME_ACK, FRAME_DATA, FrameDecoder, DEFAULT_MAX_FRAME_BYTES, decodeFrame, encodeAck, encodeData, encodePing } from './frames.js'
import { Peer, type OutItem } from './peer.js'
import { SecureChannel } from './secure-channel.js'
import { UdpTransport, udpTarget, type UdpChannel } from './udp-channel.js'
import type { UdpListenOptions } from '../transports/udp.js'
import { DEFAULT_EXPIRE_AFTER_MS, DEFAULT_TIMINGS, type ConnectionTimings } from './timings.js'

/** A secure channel on any transport (TCP: SecureChannel, UDP: UdpChannel). */
export type Channel = SecureChannel | UdpChannel

/** What the connection layer needs of the platform above it. */
export interface ConnectionHost {
  deliver(message: Message): void
  scopeOf(signId: string): Scope
  emit(event: 'connection' | 'disconnected', signId: string): boolean
  emit(event: 'drain', signId: string): boolean
}

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
}

export const DEFAULT_MAX_QUEUED_MESSAGES = 10_000
/** Queued bytes per peer at which send() starts saying false (like a stream's highWaterMark). */
const HIGH_WATER_BYTES = 4 * 1024 * 1024
/** Frames moved to the outgoing batch per turn, bytes: bounds the memory a batch holds. */
const BATCH_BYTES = 1024 * 1024
/** Ids per ACK frame. */
const MAX_ACK_IDS = 4096
/** Open sessions kept per peer when it dials us several times at once. */
const MAX_CHANNELS_PER_PEER = 4
export const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024
/** Most peers tracked at once (each holds at most its queue bounds). */
export const MAX_PEERS = 10_000

export class ConnectionManager {
  private readonly host: ConnectionHost
  private readonly identity: IdentityLike
  private readonly options: ConnectionManagerOptions
  private readonly logger: Logger
  private readonly timings: ConnectionTimings
  private readonly maxFrameBytes: number
  private readonly maxQueuedMessages: number
  private readonly maxQueuedBytes: number
  private readonly maxPeers: number
  /** send() says false at this many queued bytes; `drain` follows when the queue is empty. */
  private readonly highWaterBytes: number
  private readonly peers = new Map<string, Peer>()
  private readonly handshaking = new Set<Channel>()
  private handshake: ServerHandshake | undefined
  private listener: TcpListener | undefined
  private udp: UdpTransport | undefined
  private tick: NodeJS.Timeout | undefined
  /** Message ids: 8 random bytes per process, then a 64-bit sequence number. Unique across
   * restarts without a random draw (a syscall in libsodium) per message. */
  private readonly idPrefix = randomBytes(8)
  private readonly idScratch = Buffer.concat([this.idPrefix, Buffer.alloc(8)])
  private readonly idPrefix0 = this.idPrefix.readUInt32BE(0)
  private readonly idPrefix1 = this.idPrefix.readUInt32BE(4)
  private seq = 0
  private started = false
  private closed = false

  constructor(options: ConnectionManagerOptions) {
    this.options = options
    this.host = options.host
    this.identity = options.identity
    this.logger = options.logger
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings }
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.maxQueuedMessages = options.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES
    this.maxPeers = options.maxPeers ?? MAX_PEERS
    this.highWaterBytes = Math.min(HIGH_WATER_BYTES, this.maxQueuedBytes / 2)
  }

  /** Starts listening (once the identity is known); returns the connectionInfo to publish. */
  async start(): Promise<ConnectionInfoEntry[]> {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the connection manager is closed')
    this.handshake = new ServerHandshake({ identity: this.identity, limits: STREAM_LIMITS, auth: 'signid' })
    let info: ConnectionInfoEntry[] = []
    if (this.options.tcp !== false) {
      this.listener = new TcpListener((socket) => this.accept(socket))
      await this.listener.listen(this.options.tcp ?? {})
      info = this.listener.connectionInfo()
    }
    if (this.options.udp !== false) {
      this.udp = new UdpTransport({ identity: this.identity, timings: { handshakeTimeoutMs: this.timings.handshakeTimeoutMs } })
      this.udp.onChannel((channel) => this.acceptChannel(channel, channel.remote))
      await this.udp.listen(this.options.udp ?? {})
      info = [...info, ...this.udp.connectionInfo()]
    }
    this.tick = setInterval(() => this.onTick(), this.timings.tickMs)
    this.tick.unref()
    this.started = true
    for (const peer of this.peers.values()) if (peer.queue.length) this.ensureChannel(peer)
    return info
  }

  /** signIds of the peers with an open channel. */
  connectedPeers(): string[] {
    return [...this.peers.values()].filter((p) => p.channel).map((p) => p.signId)
  }

  /** Closes the session with `signId`, if any. Messages still waiting make it reconnect. */
  async disconnect(signId: string): Promise<void> {
    const peer = this.peers.get(signId)
    if (!peer) return
    await Promise.all(
      [...peer.channels].map((channel) => {
        const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()))
        channel.close()
        return closed
      })
    )
  }

  /** Dropped-packet counters of the handshake responder (tests, stats). */
  get handshakeDrops(): Readonly<Record<string, number>> {
    return this.handshake ? { ...this.handshake.drops } : {}
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  /**
   * Queues a message for a remote signId. Returns false when the peer's queue is past its
   * high-water mark (the message is still taken; wait for the platform's `drain`).
   * @throws InvalidArgumentError for a destination that is not a signId or a payload that is not
   *   a string or bytes, or a message larger than the frame bound.
   */
  send(message: OutgoingMessage, options: SendOptions): boolean {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the platform is closed')
    if (!this.peers.has(message.destination) && !parseId(message.destination)) throw new InvalidArgumentError(`destination is neither 'local' nor a signId: ${String(message.destination).slice(0, 60)}`)
    const payload = message.payload
    if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) {
      throw new InvalidArgumentError('a remote payload must be a string or bytes (API objects encode for you)')
    }
    const expireAfter = options.expireAfter ?? DEFAULT_EXPIRE_AFTER_MS
    if (typeof expireAfter !== 'number' || !Number.isFinite(expireAfter) || expireAfter <= 0) {
      throw new InvalidArgumentError('expireAfter must be a positive, finite number of milliseconds')
    }
    const now = Date.now()
    const seq = this.seq++
    const id = this.idScratch // encodeData copies it into the frame
    id.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 8)
    id.writeUInt32BE(seq >>> 0, 12)
    const frame = encodeData({
      id,
      protocol: message.protocol,
      topic: message.topic,
      expiresAt: now + expireAfter,
      payload: typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    })
    if (frame.length - 4 > this.maxFrameBytes) {
      throw new InvalidArgumentError(`message of ${frame.length} bytes exceeds the frame limit of ${this.maxFrameBytes} bytes`)
    }
    const realtime = options.realtime === true
    const item: OutItem = {
      key: seq,
      seq,
      frame,
      expiresAt: now + expireAfter,
      realtime,
      writeBy: realtime ? now + Math.min(expireAfter, this.timings.realtimeWaitMs) : Infinity,
      callback: options.callback,
      channel: undefined
    }
    const peer = this.peer(message.destination)
    if (!peer) {
      this.fail(item, new DeliveryError('ERR_QUEUE_FULL', `too many peers (at most ${this.maxPeers})`))
      return false
    }
    if (peer.waiting >= this.maxQueuedMessages || peer.queuedBytes + frame.length > this.maxQueuedBytes) {
      this.fail(item, new DeliveryError('ERR_QUEUE_FULL', `the queue for ${peer.signId} is full (${peer.waiting} messages, ${peer.queuedBytes} bytes)`))
      return false
    }
    if (realtime && !peer.channel && !this.started) {
      this.fail(item, new DeliveryError('ERR_UNREACHABLE', `${peer.signId} is not connected and the platform is not ready (realtime message)`))
      return false
    }
    peer.queue.push(item)
    peer.queuedBytes += frame.length
    if (peer.queuedBytes >= this.highWaterBytes) peer.wantsDrain = true
    if (peer.channel) this.flush(peer)
    else this.ensureChannel(peer)
    return peer.queuedBytes < this.highWaterBytes
  }

  private peer(signId: string): Peer | undefined {
    let peer = this.peers.get(signId)
    if (!peer) {
      if (this.peers.size >= this.maxPeers) this.evictIdlePeer()
      if (this.peers.size >= this.maxPeers) return undefined
      peer = new Peer(signId)
      this.peers.set(signId, peer)
    }
    return peer
  }

  private evictIdlePeer(): void {
    for (const [id, p] of this.peers) {
      if (!p.channel && !p.dialing && p.waiting === 0) {
        this.peers.delete(id)
        return
      }
    }
  }

  /**
   * Moves queued frames to the peer's outgoing batch while the channel takes them. The batch is
   * written once per turn (see writeOut), so frames and ACKs of one turn share packets.
   */
  private flush(peer: Peer): void {
    const channel = peer.channel
    if (!channel || peer.blocked) return
    const now = Date.now()
    while (peer.queue.length && peer.outBytes < BATCH_BYTES) {
      const item = peer.queue.shift() as OutItem
      peer.queuedBytes -= item.frame.length
      if (item.expiresAt <= now) {
        this.fail(item, new DeliveryError('ERR_EXPIRED', `message to ${peer.signId} expired before it could be sent`))
        continue
      }
      item.channel = channel
      peer.inflight.set(item.key, item)
      peer.lastMessageAt = now
      this.queueFrame(peer, item.frame)
    }
    if (peer.queue.length === 0 && peer.wantsDrain) {
      peer.wantsDrain = false
      this.host.emit('drain', peer.signId)
    }
  }

  private queueFrame(peer: Peer, frame: Buffer): void {
    peer.out.push(frame)
    peer.outBytes += frame.length
    if (peer.writeScheduled) return
    peer.writeScheduled = true
    queueMicrotask(() => this.writeOut(peer))
  }

  /** Writes the batch (ACKs first) in as few packets and syscalls as it takes. */
  private writeOut(peer: Peer): void {
    peer.writeScheduled = false
    const channel = peer.channel
    if (peer.pendingAcks.size) {
      // An ACK goes back on the channel its DATA came in on: the sender just proved that one
      // alive, while our active channel may be one the sender is closing.
      for (const [via, ids] of peer.pendingAcks) {
        const acks: Buffer[] = []
        for (let i = 0; i < ids.length; i += MAX_ACK_IDS) acks.push(encodeAck(ids.slice(i, i + MAX_ACK_IDS)))
        if (via === channel) peer.out.unshift(...acks)
        else if (via.state === 'open') via.writev(acks)
      }
      peer.pendingAcks.clear()
    }
    const frames = peer.out
    peer.out = []
    peer.outBytes = 0
    if (!channel || frames.length === 0) return // frames of a closed channel: their items were requeued
    peer.lastSentAt = Date.now()
    const ok = channel.writev(frames)
    peer.blocked = !ok
    if (ok && peer.queue.length) this.flush(peer)
  }

  private fail(item: OutItem, err: Error): void {
    const cb = item.callback
    item.callback = undefined
    if (cb) queueMicrotask(() => cb(err))
    else this.logger.warn({ err }, 'message not delivered')
  }

  private succeed(item: OutItem): void {
    const cb = item.callback
    item.callback = undefined
    if (cb) queueMicrotask(() => cb(null))
  }

  // ---------------------------------------------------------------------------------------------
  // Dialling

  private ensureChannel(peer: Peer): void {
    if (!this.started || this.closed || peer.channel || peer.dialing || peer.reconnectTimer) return
    peer.dialing = this.dial(peer)
      .then(
        () => {
          peer.backoffMs = 0
        },
        (err: unknown) => {
          this.logger.debug({ err, peer: peer.signId }, 'dial failed')
          this.options.forgetNodeInfo?.(peer.signId)
          for (const item of peer.queue.filter((i) => i.realtime)) {
            this.fail(item, new DeliveryError('ERR_UNREACHABLE', `cannot reach ${peer.signId} now (realtime message): ${describe(err)}`, { cause: err }))
          }
          this.dropRealtime(peer)
          this.scheduleReconnect(peer)
        }
      )
      .finally(() => {
        peer.dialing = undefined
      })
  }

  private dropRealtime(peer: Peer): void {
    const keep = peer.queue.filter((i) => !i.realtime)
    peer.queuedBytes = keep.reduce((n, i) => n + i.frame.length, 0)
    peer.queue = keep
  }

  private scheduleReconnect(peer: Peer): void {
    if (this.closed || peer.channel || peer.reconnectTimer || peer.queue.length + peer.inflight.size === 0) return
    peer.backoffMs = peer.backoffMs ? Math.min(peer.backoffMs * 2, this.timings.reconnectMaxMs) : this.timings.reconnectMinMs
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = undefined
      this.ensureChannel(peer)
    }, peer.backoffMs)
    peer.reconnectTimer.unref()
  }

  private async dial(peer: Peer): Promise<void> {
    const nodeInfo = await this.options.getNodeInfo(peer.signId)
    if (this.closed) return
    const signKey = parseId(peer.signId)
    const boxKey = signKey ? signPublicToBoxPublic(signKey) : null
    if (!boxKey || nodeInfo.boxId !== boxKey.toString('base64')) throw new DeliveryError('ERR_UNREACHABLE', `nodeInfo for ${peer.signId} has a boxId that is not derived from it`)
    const targets = nodeInfo.connectionInfo.map(tcpTarget).filter((t): t is { address: string; port: number } => t !== null)
    const udp = this.udp
    const udpTargets = udp ? nodeInfo.connectionInfo.map(udpTarget).filter((t): t is { address: string; port: number } => t !== null) : []
    if (targets.length + udpTargets.length === 0) throw new DeliveryError('ERR_UNREACHABLE', `nodeInfo for ${peer.signId} lists no transport we can dial`)
    // Every address of every transport at once; the first authenticated channel wins.
    const attempts: Array<Promise<Channel>> = targets.map(async (t, index) => {
      const socket = await dialTcp(t.address, t.port, this.timings.handshakeTimeoutMs)
      const channel = SecureChannel.client(socket, {
        identity: this.identity,
        remoteSignId: peer.signId,
        remoteBoxId: nodeInfo.boxId,
        limits: STREAM_LIMITS,
        handshakeTimeoutMs: this.timings.handshakeTimeoutMs
      })
      if (index === 0) this.sendEarly(peer, channel)
      return this.handshakeDone<Channel>(channel)
    })
    // Happy Eyeballs (RFC 8305's idea): TCP first; UDP after a head start unless a session is up
    // by then. On loopback UDP wins a plain race (no TCP handshake) but our UDP stream moves
    // ~35-50 MB/s against TCP's ~240 here, so an even race would put most sessions on the slow path.
    const headStart = targets.length ? this.timings.udpHeadStartMs : 0
    let won = false
    for (const t of udpTargets) {
      attempts.push(
        new Promise<void>((resolve) => {
          if (!headStart) return resolve()
          const timer = setTimeout(resolve, headStart)
          timer.unref()
        }).then(() => {
          if (won || this.closed) throw new DeliveryError('ERR_UNREACHABLE', 'another transport connected first')
          return this.handshakeDone<Channel>(
            (udp as UdpTransport).dial(t.address, t.port, { remoteSignId: peer.signId, remoteBoxId: nodeInfo.boxId, handshakeTimeoutMs: this.timings.handshakeTimeoutMs })
          )
        })
      )
    }
    // First authenticated channel wins; the others are closed as they finish.
    await new Promise<void>((resolve, reject) => {
      let failed = 0
      let lastError: unknown
      for (const attempt of attempts) {
        attempt.then(
          (channel) => {
            if (won || this.closed) return channel.close()
            won = true
            this.attach(peer, channel)
            resolve()
          },
          (err: unknown) => {
            lastError = err
            if (++failed === attempts.length && !won) reject(lastError)
          }
        )
      }
    })
  }

  /**
   * 0-RTT: the frames at the head of the queue that fit in the Initiate go with it, so the first
   * message costs no extra round trip (replay is refused by the server's cookie cache, and ids
   * drop duplicates). If this attempt does not become the peer's channel, they go back to the
   * queue.
   */
  private sendEarly(peer: Peer, channel: SecureChannel): void {
    const frames: Buffer[] = []
    let bytes = 0
    const now = Date.now()
    while (peer.queue.length) {
      const item = peer.queue[0] as OutItem
      if (bytes + item.frame.length > channel.earlyRoom || item.expiresAt <= now) break
      peer.queue.shift()
      peer.queuedBytes -= item.frame.length
      item.channel = channel
      peer.inflight.set(item.key, item)
      frames.push(item.frame)
      bytes += item.frame.length
    }
    if (!frames.length) return
    channel.writev(frames)
    channel.once('close', () => {
      if (peer.channel === channel || this.closed) return // attached: detach() took them back
      this.requeueInflight(peer, (c) => c === channel)
      if (peer.channel) this.flush(peer)
    })
  }

  /** Resolves with the channel once it is secure; rejects if it closes first. */
  private handshakeDone<C extends Channel>(channel: C): Promise<C> {
    this.handshaking.add(channel)
    return new Promise((resolve, reject) => {
      const onSecure = (): void => {
        channel.off('close', onClose)
        this.handshaking.delete(channel)
        resolve(channel)
      }
      const onClose = (err?: Error): void => {
        channel.off('secure', onSecure)
        this.handshaking.delete(channel)
        reject(err ?? new ProtocolError('ERR_HANDSHAKE', 'channel closed during the handshake'))
      }
      channel.once('secure', onSecure)
      channel.once('close', onClose)
    })
  }

  private accept(socket: PacketSocket): void {
    if (this.closed || !this.handshake) return socket.close()
    const channel = SecureChannel.server(socket, { handshake: this.handshake, handshakeTimeoutMs: this.timings.handshakeTimeoutMs })
    this.acceptChannel(channel, socket.remote)
  }

  /** An incoming channel (TCP or UDP): once authenticated, it joins its peer. */
  private acceptChannel(channel: Channel, remote: string): void {
    if (this.closed) return channel.close()
    this.handshakeDone(channel).then(
      (c) => {
        const peer = c.remoteSignId ? this.peer(c.remoteSignId) : undefined
        if (!peer || this.closed) return c.close()
        this.attach(peer, c)
      },
      (err: unknown) => this.logger.debug({ err, remote }, 'incoming handshake failed')
    )
  }

  // ---------------------------------------------------------------------------------------------
  // Channels

  private initiatorOf(channel: Channel): string {
    return channel.initiator ? this.identity.getSignId() : (channel.remoteSignId as string)
  }

  /** Makes `channel` the peer's channel, or closes it if the existing one wins the tie-break. */
  private attach(peer: Peer, channel: Channel): void {
    const decoder = new FrameDecoder(this.maxFrameBytes)
    channel.on('data', (chunk: Buffer) => {
      peer.lastReceivedAt = Date.now()
      try {
        decoder.push(chunk, (body) => this.onFrame(peer, channel, body))
      } catch (err) {
        this.logger.error({ err, peer: peer.signId }, 'closing a session: bad frame')
        channel.close(new ProtocolError('ERR_PROTOCOL', `bad frame from ${peer.signId}: ${describe(err)}`, { cause: err }))
      }
    })
    channel.on('drain', () => {
      if (peer.channel !== channel) return
      peer.blocked = false
      this.flush(peer)
    })
    channel.once('close', (err?: Error) => this.detach(peer, channel, err))
    peer.lastReceivedAt = peer.lastSentAt = Date.now()
    this.choose(peer, channel)
    // Only now, with the peer's channel settled, may frames (0-RTT ones too) be delivered: a
    // handler's reply must find the channel, not start a dial back.
    channel.resume()
  }

  /** Makes `channel` active, keeps it as a spare, or closes it (see attach). */
  private choose(peer: Peer, channel: Channel): void {
    if (channel.state !== 'open') return
    const current = peer.channel
    peer.channels.push(channel)
    if (!current) {
      this.activate(peer, channel, true)
      return
    }
    const a = this.initiatorOf(current)
    const b = this.initiatorOf(channel)
    if (a !== b) {
      // Crossing dials: both sides keep the one dialled by the smaller signId.
      if (b < a) {
        this.activate(peer, channel, false)
        current.close()
      } else {
        channel.close()
      }
      return
    }
    // Both dialled by the same node: only that node chooses (it may have dialled several
    // addresses at once, and the others may complete here in any order). The other side uses the
    // newest and falls back to the rest as they close, so the two sides never close each other's
    // choice. Bounded: beyond MAX_CHANNELS_PER_PEER the oldest goes.
    this.activate(peer, channel, false)
    if (channel.initiator) current.close()
    else if (peer.channels.length > MAX_CHANNELS_PER_PEER) peer.channels[0]?.close()
  }

  private activate(peer: Peer, channel: Channel, announce: boolean): void {
    peer.channel = channel
    peer.blocked = false
    peer.out = []
    peer.outBytes = 0
    peer.backoffMs = 0
    if (peer.reconnectTimer) clearTimeout(peer.reconnectTimer)
    peer.reconnectTimer = undefined
    peer.lastMessageAt = Date.now()
    if (announce) this.host.emit('connection', peer.signId)
    this.requeueInflight(peer, (c) => c !== channel)
    this.flush(peer)
  }

  /** Moves unacknowledged frames written on other channels back to the queue, in order. */
  private requeueInflight(peer: Peer, from: (c: Channel | undefined) => boolean): void {
    const back: OutItem[] = []
    for (const item of peer.inflight.values()) {
      if (!from(item.channel)) continue
      peer.inflight.delete(item.key)
      item.channel = undefined
      if (item.realtime) this.fail(item, new DeliveryError('ERR_UNREACHABLE', `the session to ${peer.signId} closed before a realtime message was acknowledged`))
      else back.push(item)
    }
    if (!back.length) return
    peer.queue = [...back, ...peer.queue].sort((x, y) => x.seq - y.seq)
    peer.queuedBytes += back.reduce((n, i) => n + i.frame.length, 0)
  }

  private detach(peer: Peer, channel: Channel, err?: Error): void {
    if (err) this.logger.debug({ err, peer: peer.signId }, 'session closed')
    const i = peer.channels.indexOf(channel)
    if (i >= 0) peer.channels.splice(i, 1)
    if (peer.channel !== channel) return
    peer.channel = undefined
    this.requeueInflight(peer, (c) => c === channel)
    const next = [...peer.channels].reverse().find((c) => c.state === 'open')
    if (next && !this.closed) {
      this.activate(peer, next, false)
      return
    }
    if (!this.closed) this.host.emit('disconnected', peer.signId)
    this.dropRealtimeOnDisconnect(peer)
    this.scheduleReconnect(peer)
  }

  private dropRealtimeOnDisconnect(peer: Peer): void {
    for (const item of peer.queue) {
      if (item.realtime) this.fail(item, new DeliveryError('ERR_UNREACHABLE', `the session to ${peer.signId} closed (realtime message)`))
    }
    this.dropRealtime(peer)
  }

  private onFrame(peer: Peer, via: Channel, body: Buffer): void {
    const frame = decodeFrame(body) // throws DecodeError: the caller closes the channel
    if (frame.type === FRAME_ACK) {
      for (const id of frame.ids) {
        // Our ids are our prefix and our sequence number: anything else is not ours.
        if (id.readUInt32BE(0) !== this.idPrefix0 || id.readUInt32BE(4) !== this.idPrefix1) continue
        const key = id.readUInt32BE(8) * 0x1_0000_0000 + id.readUInt32BE(12)
        const item = peer.inflight.get(key)
        if (item) {
          peer.inflight.delete(key)
          this.succeed(item)
        }
      }
      return
    }
    if (frame.type !== FRAME_DATA) return // PING: its arrival already counted as life
    peer.lastMessageAt = Date.now()
    this.ack(peer, via, Buffer.from(frame.id))
    if (!peer.firstSight(frame.id)) return
    if (frame.expiresAt !== undefined && frame.expiresAt < Date.now()) return
    this.host.deliver({
      sender: peer.signId,
      protocol: frame.protocol,
      topic: frame.topic,
      scope: this.host.scopeOf(peer.signId),
      payload: frame.payload
    })
  }

  /** ACKs ride in the next batch written to the peer (with any reply the handler sends). */
  private ack(peer: Peer, via: Channel, id: Buffer): void {
    const list = peer.pendingAcks.get(via)
    if (list) list.push(id)
    else peer.pendingAcks.set(via, [id])
    if (peer.writeScheduled) return
    peer.writeScheduled = true
    queueMicrotask(() => this.writeOut(peer))
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  private onTick(): void {
    const now = Date.now()
    for (const peer of this.peers.values()) {
      // Expiry of waiting messages; realtime ones that missed their chance.
      if (peer.queue.length) {
        const keep: OutItem[] = []
        for (const item of peer.queue) {
          if (item.expiresAt <= now) this.fail(item, new DeliveryError('ERR_EXPIRED', `message to ${peer.signId} expired undelivered`))
          else if (item.realtime && item.writeBy <= now) this.fail(item, new DeliveryError('ERR_UNREACHABLE', `${peer.signId} could not be reached in time (realtime message)`))
          else keep.push(item)
        }
        if (keep.length !== peer.queue.length) {
          peer.queue = keep
          peer.queuedBytes = keep.reduce((n, i) => n + i.frame.length, 0)
        }
      }
      for (const item of peer.inflight.values()) {
        if (item.expiresAt <= now) {
          peer.inflight.delete(item.key)
          this.fail(item, new DeliveryError('ERR_EXPIRED', `message to ${peer.signId} expired unacknowledged`))
        }
      }
      const channel = peer.channel
      if (!channel) continue
      if (now - peer.lastReceivedAt >= this.timings.deadAfterMs) {
        channel.close(new ProtocolError('ERR_TIMEOUT', `no traffic from ${peer.signId} for ${this.timings.deadAfterMs} ms`))
        continue
      }
      if (peer.waiting === 0 && now - peer.lastMessageAt >= this.timings.idleCloseMs) {
        channel.close()
        continue
      }
      if (now - peer.lastSentAt >= this.timings.keepaliveMs) this.queueFrame(peer, encodePing())
    }
  }

  /** Closes every channel and socket, fails what still waits. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.tick) clearInterval(this.tick)
    for (const channel of this.handshaking) channel.close()
    const closing = new MMError('ERR_CLOSED', 'the platform closed before the message was delivered')
    for (const peer of this.peers.values()) {
      if (peer.reconnectTimer) clearTimeout(peer.reconnectTimer)
      for (const item of [...peer.queue, ...peer.inflight.values()]) this.fail(item, closing)
      peer.queue = []
      peer.inflight.clear()
      for (const channel of [...peer.channels]) channel.close()
      peer.channel = undefined
    }
    await this.listener?.close()
    await this.udp?.close()
    this.handshake?.close()
  }
}
