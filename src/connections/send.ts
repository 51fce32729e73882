/**
 * Sending: the per-peer queue, message ids, and the batch written once per turn.
 *
 * - send() checks the message; a non-realtime one goes to the persistent outbox (delivery.ts),
 *   which loads it into the queue once stored. A realtime one gets an id, is framed and queued
 *   (bounded: messages and bytes per peer; `false` past the high-water mark, then `drain`).
 * - `drain`: every `false` from send() (realtime or outbox, past a high-water mark or refused)
 *   is followed by one `drain` for that destination once there is room again (drainWhen), so a
 *   sender that waits for `drain` on false never hangs.
 * - flush() moves queued frames to the peer's outgoing batch while its channel takes them;
 *   writeOut() writes the batch (ACKs first) in as few packets and system calls as it takes.
 * - Unacknowledged frames wait in `inflight` until their ACK (receive.ts) or until they are
 *   requeued, in order, onto the next channel. `realtime` messages are never resent.
 */
import { DeliveryError, InvalidArgumentError, MMError, ProtocolError, StateError, describe } from '../errors.js'
import { randomBytes } from '../crypto/sodium.js'
import { parseId } from '../identity/ids.js'
import type { Channel } from './channel.js'
import type { ConnectionContext, Dialling, Durable } from './context.js'
import { AckList } from './ack-list.js'
import { SPARE_ROOM_BYTES, SPARE_ROOM_MIN_BYTES, encodeData } from './frames.js'
import type { OutgoingMessage, SendOptions } from './message-types.js'
import type { OutItem, Peer } from './peer.js'
import { DEFAULT_EXPIRE_AFTER_MS } from './timings.js'

/** Frames moved to the outgoing batch per turn, bytes: bounds the memory a batch holds. */
const BATCH_BYTES = 1024 * 1024
/** Ids per ACK frame. */
const MAX_ACK_IDS = 4096
/**
 * A channel with this many bytes written and not yet gone is not being read: its ACKs are held
 * (bounded by limits.maxHeldAckIds) until it drains, instead of piling up in its buffer.
 */
export const ACK_HOLD_BYTES = 1024 * 1024
/** Destinations owed a `drain` at most; past it the oldest gets its drain at once (it may retry). */
const MAX_DRAIN_WAITS = 100_000

/**
 * Message ids: 8 random bytes per process, then a 64-bit sequence number. Unique across
 * restarts without a random draw (a syscall in libsodium) per message.
 */
export class MessageIds {
  private readonly prefix = randomBytes(8)
  private readonly scratch = Buffer.concat([this.prefix, Buffer.alloc(8)])
  private readonly prefix0 = this.prefix.readUInt32BE(0)
  private readonly prefix1 = this.prefix.readUInt32BE(4)
  private seq = 0

  /** The next sequence number, and its id in a scratch buffer (valid until the next call). */
  next(): { seq: number; id: Buffer } {
    const seq = this.seq++
    this.scratch.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 8)
    this.scratch.writeUInt32BE(seq >>> 0, 12)
    return { seq, id: this.scratch }
  }

  /** Our sequence number in the id at `at` of `buf`, or undefined when the id is not one of ours. */
  ours(buf: Buffer, at = 0): number | undefined {
    if (buf.readUInt32BE(at) !== this.prefix0 || buf.readUInt32BE(at + 4) !== this.prefix1) return undefined
    return buf.readUInt32BE(at + 8) * 0x1_0000_0000 + buf.readUInt32BE(at + 12)
  }
}

export class Sender {
  readonly ids = new MessageIds()
  /** The persistent outbox (with a storage): non-realtime sends go there. */
  durable: Durable | undefined
  private readonly ctx: ConnectionContext
  private readonly dialling: Dialling
  /**
   * Destinations send() said false for, each with the test of its room (undefined: ask again on
   * the next tick). Checked after ACKs, failures and flushes, and on every tick.
   */
  private readonly drainWaits = new Map<string, (() => boolean) | undefined>()
  private drainCheck: NodeJS.Immediate | undefined

  constructor(ctx: ConnectionContext, dialling: Dialling) {
    this.ctx = ctx
    this.dialling = dialling
  }

  /**
   * Queues a message for a remote signId. Returns false when the peer's queue is past its
   * high-water mark (the message is still taken), or when the message was refused (its callback
   * hears why: ERR_QUEUE_FULL, or ERR_UNREACHABLE for a realtime one before the start). Every
   * false is followed by a `drain` for that destination once there is room again: the queue
   * emptied with fewer than maxQueuedMessages unacknowledged, the peer table or the outbox has
   * room (checked each tick), or the platform started.
   * @throws InvalidArgumentError for a destination that is not a signId or a payload that is not
   *   a string or bytes, or a message larger than the frame bound.
   */
  send(message: OutgoingMessage, options: SendOptions): boolean {
    const ctx = this.ctx
    if (ctx.closed) throw new StateError('ERR_CLOSED', 'the platform is closed')
    if (!ctx.peers.has(message.destination) && !parseId(message.destination)) throw new InvalidArgumentError(`destination is neither 'local' nor a signId: ${String(message.destination).slice(0, 60)}`)
    const payload = message.payload
    if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) {
      throw new InvalidArgumentError('a remote payload must be a string or bytes (API objects encode for you)')
    }
    const expireAfter = options.expireAfter ?? DEFAULT_EXPIRE_AFTER_MS
    if (typeof expireAfter !== 'number' || !Number.isFinite(expireAfter) || expireAfter <= 0) {
      throw new InvalidArgumentError('expireAfter must be a positive, finite number of milliseconds')
    }
    const realtime = options.realtime === true
    if (!realtime && this.durable) return this.durable.send(message, options, expireAfter)
    const now = Date.now()
    const { seq, id } = this.ids.next() // encodeData copies the id into the frame
    // A realtime frame is never resent: a large one gets room for its channel to seal it in place.
    const room = realtime && typeof payload !== 'string' && payload.byteLength >= SPARE_ROOM_MIN_BYTES ? SPARE_ROOM_BYTES : 0
    const frame = encodeData(
      {
        id,
        protocol: message.protocol,
        topic: message.topic,
        expiresAt: now + expireAfter,
        payload: typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
      },
      room
    )
    const limits = ctx.limits
    if (frame.length - 4 > limits.maxFrameBytes) {
      throw new InvalidArgumentError(`message of ${frame.length} bytes exceeds the frame limit of ${limits.maxFrameBytes} bytes`)
    }
    const item: OutItem = {
      key: seq,
      seq,
      frame,
      expiresAt: now + expireAfter,
      realtime,
      writeBy: realtime ? now + Math.min(expireAfter, ctx.timings.realtimeWaitMs) : Infinity,
      callback: options.callback,
      channel: undefined
    }
    const peer = ctx.table.admit(message.destination, true)
    if (!peer) {
      ctx.counts.sendPeerTableFull++
      this.fail(item, new DeliveryError('ERR_QUEUE_FULL', `too many peers (at most ${limits.maxPeers}), strangers at most ${limits.maxStrangerPeers}, and none can be evicted`))
      this.drainWhen(message.destination, undefined) // room in the table: asked again each tick
      return false
    }
    if (peer.queue.length + peer.inflight.size >= limits.maxQueuedMessages || peer.queuedBytes + frame.length > limits.maxQueuedBytes) {
      this.fail(item, new DeliveryError('ERR_QUEUE_FULL', `the queue for ${peer.signId} is full (${peer.waiting} messages, ${peer.queuedBytes} bytes)`))
      this.drainWhen(peer.signId, () => this.hasRoom(peer))
      return false
    }
    if (realtime && !peer.channel && !ctx.started) {
      this.fail(item, new DeliveryError('ERR_UNREACHABLE', `${peer.signId} is not connected and the platform is not ready (realtime message)`))
      this.drainWhen(peer.signId, () => ctx.started)
      return false
    }
    peer.queue.push(item)
    peer.queuedBytes += frame.length
    if (peer.channel) this.flush(peer)
    else this.dialling.ensureChannel(peer)
    if (peer.queuedBytes < limits.highWaterBytes) return true
    this.drainWhen(peer.signId, () => this.hasRoom(peer))
    return false
  }

  /**
   * Room again after a false: the queue has emptied (as a stream's `drain`) and fewer than
   * maxQueuedMessages wait for their ACK.
   */
  private hasRoom(peer: Peer): boolean {
    return peer.queue.length === 0 && peer.inflight.size < this.ctx.limits.maxQueuedMessages
  }

  /**
   * send() said false for `signId`: one `drain` follows once `hasRoom()` holds (undefined: on
   * the next tick, for a bound whose room cannot be seen cheaply; the next send may be refused
   * again). A later false replaces the test: one drain answers every false before it.
   */
  drainWhen(signId: string, hasRoom: (() => boolean) | undefined): void {
    const waits = this.drainWaits
    waits.delete(signId)
    waits.set(signId, hasRoom)
    if (waits.size <= MAX_DRAIN_WAITS) return
    const oldest = waits.keys().next().value as string
    waits.delete(oldest)
    setImmediate(() => this.ctx.closed || this.ctx.host.emit('drain', oldest)).unref()
  }

  /** Room may have been made (an ACK, a failure, a flush): check the waits once this turn is over. */
  private roomMade(): void {
    if (this.drainCheck || this.drainWaits.size === 0) return
    // An immediate, not a microtask: a drain listener that sends and is refused again waits for
    // the next turn of the event loop instead of spinning in microtasks. Unref'd; it ends itself.
    this.drainCheck = setImmediate(() => {
      this.drainCheck = undefined
      this.checkDrains(false)
    })
    this.drainCheck.unref()
  }

  /** Emits `drain` for each destination owed one that has room (`tick`: the undefined tests too). */
  checkDrains(tick: boolean): void {
    if (this.ctx.closed || this.drainWaits.size === 0) return
    for (const [signId, hasRoom] of [...this.drainWaits]) {
      if (this.drainWaits.get(signId) !== hasRoom) continue // replaced by a listener meanwhile
      if (hasRoom ? !hasRoom() : !tick) continue
      this.drainWaits.delete(signId)
      this.ctx.host.emit('drain', signId)
    }
  }

  /**
   * Moves queued frames to the peer's outgoing batch while the channel takes them. The batch is
   * written once per turn (see writeOut), so frames and ACKs of one turn share packets.
   */
  flush(peer: Peer): void {
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
    if (peer.queue.length === 0) this.roomMade()
  }

  /** Adds a frame to this turn's batch. */
  queueFrame(peer: Peer, frame: Buffer): void {
    peer.out.push(frame)
    peer.outBytes += frame.length
    this.scheduleWrite(peer)
  }

  /**
   * The batch (and pending ACKs) goes out at the end of this turn. While the ids of durable
   * messages from this peer are being recorded (delivery-receive.ts), it waits for the next
   * record to be written instead (`force` then): their ACKs ride with what the handlers sent back,
   * in one packet and one system call, instead of following it alone. The wait is one storage
   * batch at most, since each written record forces the write.
   */
  scheduleWrite(peer: Peer, force = false): void {
    if (!force && peer.recording > 0) {
      peer.writeDeferred = true
      return
    }
    peer.writeDeferred = false
    if (peer.writeScheduled) return
    peer.writeScheduled = true
    queueMicrotask(() => this.writeOut(peer))
  }

  /** Writes what waits for the peer (ACKs, the batch) now, e.g. before its channels close. */
  writeNow(peer: Peer): void {
    if (peer.pendingAcks.size || peer.out.length) this.writeOut(peer)
  }

  /** Writes the batch (ACKs first) in as few packets and syscalls as it takes. */
  private writeOut(peer: Peer): void {
    peer.writeScheduled = false
    const channel = peer.channel
    if (peer.pendingAcks.size) {
      // An ACK goes back on the channel its DATA came in on: the sender just proved that one
      // alive, while our active channel may be one the sender is closing.
      for (const [via, ids] of peer.pendingAcks) {
        if (via.state !== 'open') {
          peer.pendingAcks.delete(via)
          continue
        }
        // The peer does not read what we send: its ACKs wait (bounded) for the channel's drain
        // rather than pile up in our buffer. Sending on without reading is not allowed.
        if (via.bufferedBytes >= ACK_HOLD_BYTES) {
          if (ids.length > this.ctx.limits.maxHeldAckIds) {
            peer.pendingAcks.delete(via)
            this.notReading(peer, via, `${ids.length} acknowledgements wait and it does not read`)
          }
          continue
        }
        peer.pendingAcks.delete(via)
        const acks = ids.frames(MAX_ACK_IDS)
        AckList.give(ids) // its ids are copied into the frames
        if (via === channel) peer.out.unshift(...acks)
        else this.write(peer, via, acks)
      }
    }
    const frames = peer.out
    peer.out = []
    peer.outBytes = 0
    if (!channel || frames.length === 0) return // frames of a closed channel: their items were requeued
    peer.lastSentAt = Date.now()
    const ok = this.write(peer, channel, frames)
    peer.blocked = !ok
    if (ok && peer.queue.length) this.flush(peer)
  }

  /**
   * Writes to one channel, within its outgoing bound. Nothing thrown here reaches the event loop
   * (we run in a microtask): a bound passed or a write that throws closes that channel only.
   */
  private write(peer: Peer, channel: Channel, buffers: Buffer[]): boolean {
    if (channel.bufferedBytes > this.ctx.limits.maxOutgoingBytes) {
      this.notReading(peer, channel, `${channel.bufferedBytes} bytes wait to go out (at most ${this.ctx.limits.maxOutgoingBytes})`)
      return false
    }
    try {
      return channel.writev(buffers)
    } catch (err) {
      this.ctx.counts.writeFailed++
      this.ctx.logger.warn({ err, peer: peer.signId }, 'closing a session: write failed')
      void channel.close(new MMError('ERR_QUEUE_FULL', `write to ${peer.signId} failed: ${describe(err)}`, { cause: err }))
      return false
    }
  }

  /** The peer does not read what we send: its channel closes (messages go again on the next). */
  private notReading(peer: Peer, channel: Channel, why: string): void {
    this.ctx.counts.notReading++
    this.ctx.logger.warn({ peer: peer.signId, remote: channel.remote }, `closing a session: ${why}`)
    void channel.close(new ProtocolError('ERR_LIMIT_REACHED', `${peer.signId} does not read what we send: ${why}`))
  }

  /**
   * 0-RTT: the frames at the head of the queue that fit in the Initiate go with it, so the first
   * message costs no extra round trip (replay is refused by the server's cookie cache, and ids
   * drop duplicates). If this attempt does not become the peer's channel, they go back to the
   * queue. Not while the peer has a session: frames lower in the queue's order may be in flight
   * on it, and one sent early here would overtake them (the receiver sees a sender's messages
   * out of order; its seen-id window, storage/seen-ids.ts, keeps that from losing one).
   */
  sendEarly(peer: Peer, channel: Channel): void {
    if (peer.channel) return
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
    try {
      channel.writev(frames)
    } catch (err) {
      void channel.close(err as Error)
    }
    channel.once('close', () => {
      if (peer.channel === channel || this.ctx.closed) return // attached: detach() took them back
      this.requeueInflight(peer, (c) => c === channel)
      if (peer.channel) this.flush(peer)
    })
  }

  /** Moves unacknowledged frames written on matching channels back to the queue, in order. */
  requeueInflight(peer: Peer, from: (c: Channel | undefined) => boolean): void {
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

  /** Fails every queued realtime message with `why` (they go now or never). */
  failRealtime(peer: Peer, why: (item: OutItem) => Error): void {
    let dropped = false
    for (const item of peer.queue) {
      if (!item.realtime) continue
      this.fail(item, why(item))
      dropped = true
    }
    if (!dropped) return
    const keep = peer.queue.filter((i) => !i.realtime)
    peer.queuedBytes = keep.reduce((n, i) => n + i.frame.length, 0)
    peer.queue = keep
  }

  /** The message failed: its callback hears why (or the log, without one). */
  fail(item: OutItem, err: Error): void {
    this.roomMade()
    if (item.durable) return this.durable?.failed(item, err)
    const cb = item.callback
    item.callback = undefined
    if (cb) queueMicrotask(() => cb(err))
    else this.ctx.logger.warn({ err }, 'message not delivered')
  }

  /** The message was acknowledged. */
  succeed(item: OutItem): void {
    this.roomMade()
    if (item.durable) return this.durable?.delivered(item)
    const cb = item.callback
    item.callback = undefined
    if (cb) queueMicrotask(() => cb(null))
  }
}
