/**
 * Delivery through the persistent outbox: non-realtime messages, their durable ids, the
 * end-to-end acknowledgement, dedupe on the receiving side, expiry, and the stored nodeInfo of
 * peers we still owe messages to.
 *
 * Sending. send() appends the message to the outbox (storage/outbox-store.ts, group commit); it
 * counts as accepted once that write is done. Messages stay in storage; per destination at most
 * `window` of them are loaded into the peer's queue at a time (read back in `seq` order), so a
 * million pending messages do not live in the heap. The queue's frames go out as any other; an
 * outbox message is removed from storage only on its ACK (then `delivered`), on expiry or a
 * cancel (then `failed`). Closing leaves every pending message in the outbox: after a restart it
 * is loaded again and its destination dialled, from the directory or from the nodeInfo stored
 * here while messages wait for that peer (`delivery.nodeInfo.<signId>`).
 *
 * Ids on the wire: 16 bytes, the outbox's 8-byte stream then the 64-bit `seq` (storage/
 * message-id.ts writes them `<stream hex>-<seq>`), with DATA flag 4 (frames.ts).
 *
 * Receiving. A durable message whose id the persistent record (storage/seen-ids.ts) holds is not
 * handed over again; otherwise it goes to the handlers, then its id is recorded, and the ACK goes
 * back only once that record is written. A receiver killed between its handlers and that write
 * sees the message once more after the resend: the only duplicate a crash can cause.
 *
 * Payload in storage: one byte (1: text, 0: bytes) then the payload's bytes, so a string sent
 * comes out a string.
 *
 * Over 400 lines: one class whose every path (send, load, ACK, expiry, cancel, close) keeps the
 * same per-destination window (in memory, appends in flight, last loaded) consistent with the
 * outbox's counters; split apart they would share that state. Receiving and the stored nodeInfo
 * are in delivery-receive.ts and stored-node-info.ts.
 */
import { DeliveryError, InvalidArgumentError, MMError, StateError, describe } from '../errors.js'
import { parseMessageId } from '../storage/message-id.js'
import { OUTBOX_DEFAULTS, OutboxStore, type Appended, type OutboxEntry, type OutboxInput, type OutboxStoreOptions } from '../storage/outbox-store.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import { DurableReceiving } from './delivery-receive.js'
import type { Channel } from './channel.js'
import { StoredNodeInfo } from './stored-node-info.js'
import type { NodeInfo } from '../transports/connection-info.js'
import type { ConnectionContext, Dialling, Durable, Flushing } from './context.js'
import { encodeData, FRAME_HEADER_BYTES, MESSAGE_ID_BYTES, type DataFrame } from './frames.js'
import type { OutgoingMessage, SendOptions } from './message-types.js'
import type { DurableEntry, OutItem, Peer } from './peer.js'

/** Outbox messages loaded into one peer's queue at most. */
export const DEFAULT_DELIVERY_WINDOW = 1024
/**
 * Write-behind of the outbox (ms): a message a live peer acknowledges within this time is never
 * written to storage (its send counts as accepted on the ACK). Long enough for a LAN round trip,
 * short enough that `accepted` comes a few ms later at most.
 */
export const DEFAULT_WRITE_BEHIND_MS = 5
/**
 * Write-behind (ms) of a message that goes on the wire at once (its peer is connected and has
 * everything earlier): its ACK must come back through every message queued ahead of it, and a
 * 2 MiB window of 64 KiB messages takes 3-6 ms on loopback alone, longer on a busy machine. At
 * 5 ms most of a bulk sender's messages were written, then removed; the writes themselves slowed
 * the ACKs further (measured: durable bulk with callbacks at 5.7-6.6 ms of CPU per MB against
 * 2.9-3.0 at 25 ms, realtime 2.8).
 */
export const DEFAULT_LIVE_WRITE_BEHIND_MS = 25
/** Where a DATA frame's 16-byte id starts (frames.ts: length, type, flags, then the id). */
const DATA_ID_AT = FRAME_HEADER_BYTES + 1
/** The id a frame is made with before its own is written in (writeId). */
const NO_ID = Buffer.alloc(MESSAGE_ID_BYTES)

/** The outbox's bytes of a payload: 1 (text) or 0 (bytes), then the payload's bytes (a copy). */
function storedBytes(payload: string | Uint8Array, bodyLength: number): Buffer {
  const stored = Buffer.allocUnsafe(bodyLength + 1)
  if (typeof payload === 'string') {
    stored[0] = 1
    stored.write(payload, 1, 'utf8')
  } else {
    stored[0] = 0
    stored.set(payload, 1)
  }
  return stored
}

/** Appends not yet written for one destination past which send() says false (then `drain`). */
const APPENDS_HIGH_WATER = 8192

/** Options of the persistent outbox (Platform option `outbox`). */
export interface DeliveryOptions
  extends Pick<OutboxStoreOptions, 'now' | 'maxMessagesPerDestination' | 'maxBytesPerDestination' | 'maxMessages' | 'maxBytes' | 'sync' | 'writeBehindMs'> {
  /** How often expired outbox messages are removed (ms); default 60,000. */
  expiryIntervalMs?: number
  /** Outbox messages loaded per peer at a time; default {@link DEFAULT_DELIVERY_WINDOW}. */
  window?: number
  /**
   * Write-behind (ms) of a message sent at once to a connected peer; default `writeBehindMs` if
   * that is given, else {@link DEFAULT_LIVE_WRITE_BEHIND_MS}.
   */
  liveWriteBehindMs?: number
}

/** A pending message as `platform.outbox.list()` shows it. */
export interface PendingMessage {
  id: string
  destination: string
  topic: string
  protocol: string
  /** Payload, topic and protocol bytes. */
  size: number
  /** ms since it was accepted (by the outbox's clock). */
  age: number
  /** When it expires, ms since the epoch. */
  expiresAt: number
}

/** Per destination: what of its outbox is in memory. */
interface Loaded {
  /** Outbox messages in the peer's queue or in flight. */
  inMemory: number
  /** Highest `seq` loaded so far (-1: none). */
  last: number
  loading: boolean
  again: boolean
  /** Sends not yet handed to the outbox (it opens), and the bytes its bounds count of them. */
  before: number
  beforeBytes: number
  /** Appends not yet written, and their payload bytes. */
  appending: number
  appendingBytes: number
  wantsDrain: boolean
  /**
   * Every message of this peer's outbox is in memory (or was settled): a new send may join the
   * queue directly (the fast path of send()). False from the first send that waits its turn in
   * storage until load() has read everything written.
   */
  caughtUp: boolean
  /** Sends taking the storage path whose write is not done yet. */
  slow: number
}

export class Delivery implements Durable {
  private readonly ctx: ConnectionContext
  private readonly dialling: Dialling
  private readonly flushing: Flushing
  private readonly storage: PlatformStorage | undefined
  private readonly options: DeliveryOptions
  private readonly now: () => number
  private readonly window: number
  private readonly liveWriteBehindMs: number
  private outbox: OutboxStore | undefined
  private opening: Promise<void> | undefined
  /** Settles once open() ran (sends made while the platform starts wait for it). */
  private readonly opened: Promise<void>
  private openedNow!: (err?: Error) => void
  private stream0 = 0
  private stream1 = 0
  private order = 0
  private readonly loaded = new Map<string, Loaded>()
  /** Callbacks of accepted sends, by outbox seq. */
  private readonly callbacks = new Map<number, (err: Error | null) => void>()
  /** Fates settled before their append's continuation ran (rare; see settle()). */
  private readonly early = new Map<number, Error | null>()
  /** Sends made before the outbox opened whose append has not run yet (only they need `early`). */
  private waitingForOpen = 0
  /** Per sender: the last record write, so a duplicate's ACK never overtakes it. */
  private readonly receiving: DurableReceiving
  private readonly addresses: StoredNodeInfo

  constructor(ctx: ConnectionContext, parts: { dialling: Dialling; flushing: Flushing }, storage: PlatformStorage | undefined, options: DeliveryOptions = {}) {
    this.ctx = ctx
    this.dialling = parts.dialling
    this.flushing = parts.flushing
    this.storage = storage
    this.options = options
    this.now = options.now ?? Date.now
    this.window = options.window ?? DEFAULT_DELIVERY_WINDOW
    this.liveWriteBehindMs = options.liveWriteBehindMs ?? options.writeBehindMs ?? DEFAULT_LIVE_WRITE_BEHIND_MS
    this.receiving = new DurableReceiving(ctx, parts.flushing)
    this.addresses = new StoredNodeInfo(ctx.logger, storage)
    this.opened = new Promise<void>((resolve, reject) => {
      this.openedNow = (err) => (err ? reject(err) : resolve())
    })
    this.opened.catch(() => {})
  }

  /** True once the outbox is open (with a storage). */
  get active(): boolean {
    return this.outbox !== undefined
  }

  /** Opens the outbox, the seen-id record and the stored nodeInfo (storage must be open). */
  open(): Promise<void> {
    this.opening ??= this.doOpen().then(
      () => this.openedNow(),
      (err: unknown) => {
        this.openedNow(new StateError('ERR_NOT_READY', `the outbox did not open: ${describe(err)}`, { cause: err }))
        throw err
      }
    )
    return this.opening
  }

  private async doOpen(): Promise<void> {
    const storage = this.storage
    if (!storage) return
    const logger = this.ctx.logger
    const o = this.options
    this.outbox = await OutboxStore.open({
      storage,
      now: this.now,
      sync: o.sync,
      writeBehindMs: o.writeBehindMs ?? DEFAULT_WRITE_BEHIND_MS,
      maxMessagesPerDestination: o.maxMessagesPerDestination,
      maxBytesPerDestination: o.maxBytesPerDestination,
      maxMessages: o.maxMessages,
      maxBytes: o.maxBytes,
      expiryIntervalMs: o.expiryIntervalMs ?? 60_000,
      onExpired: (entry, err) => this.onExpired(entry.destination, entry.seq, entry.id, entry.topic, err),
      onCorrupt: (err, key) => logger.warn({ err, key }, 'outbox: a damaged entry was removed')
    })
    await this.receiving.open(storage, this.now, o.sync)
    const stream = Buffer.from(this.outbox.streamId, 'hex')
    this.stream0 = stream.readUInt32BE(0)
    this.stream1 = stream.readUInt32BE(4)
    await this.addresses.load()
  }

  /** After a start: loads what waits for each destination and dials it. */
  resume(): void {
    const outbox = this.outbox
    if (!outbox) return
    for (const dest of outbox.destinations()) {
      const peer = this.ctx.table.admit(dest, true)
      if (!peer) continue
      this.sync(peer)
      this.load(peer)
      this.dialling.ensureChannel(peer)
    }
  }

  // ---- sending ----

  send(message: OutgoingMessage, options: SendOptions, expireAfter: number): boolean {
    const ctx = this.ctx
    const payload = message.payload as string | Uint8Array
    const text = typeof payload === 'string'
    const { topic, protocol } = message
    const bodyLength = text ? Buffer.byteLength(payload, 'utf8') : payload.byteLength
    const topicBytes = Buffer.byteLength(topic)
    const protocolBytes = Buffer.byteLength(protocol)
    const frameBytes = 1 + 1 + MESSAGE_ID_BYTES + 1 + protocolBytes + 2 + topicBytes + 8 + bodyLength
    if (frameBytes > ctx.limits.maxFrameBytes) {
      throw new InvalidArgumentError(`message of ${frameBytes + FRAME_HEADER_BYTES - 1} bytes exceeds the frame limit of ${ctx.limits.maxFrameBytes} bytes`)
    }
    const dest = message.destination
    const callback = options.callback
    const peer = ctx.table.admit(dest, true)
    if (!peer) {
      this.flushing.drainWhen(dest, undefined) // a false is always followed by a drain (send.ts)
      return this.refuse(new DeliveryError('ERR_QUEUE_FULL', `too many peers (at most ${ctx.limits.maxPeers})`), callback)
    }
    // What storage keeps: a byte (1: text, 0: bytes), then the payload's bytes.
    const bytes = 1 + bodyLength
    const counted = bytes + topicBytes + protocolBytes
    const full = this.full(dest, counted)
    if (full) {
      this.flushing.drainWhen(dest, () => !this.full(dest, counted))
      return this.refuse(new DeliveryError('ERR_QUEUE_FULL', `the outbox is full: at most ${full}`), callback)
    }
    const outbox = this.outbox
    if (!outbox || ctx.closed) {
      const input = { destination: dest, topic, protocol, payload: storedBytes(payload, bodyLength), expiresAt: 0 }
      return this.sendWhenOpen(peer, input, counted, expireAfter, options)
    }
    const expiresAt = this.now() + expireAfter
    const st = this.state(dest) // before the append: a new state is caught up only if storage holds nothing for dest
    // The fast path: when everything earlier for this peer is in memory, the message joins its
    // queue now and goes out while storage writes it. Sending before the write is durable adds a
    // chance of delivery, never a loss: a crash before the write loses what the sender was never
    // told was accepted, exactly as before. Otherwise it waits its turn in storage (load()).
    // Its frame is made before the append (the id is written in once the seq is known): the
    // frame's payload bytes are also what the outbox writes, so the payload is copied once.
    let frame: Buffer | undefined
    let input: OutboxInput
    if (st.caughtUp && !st.loading && st.inMemory < this.window && peer.queuedBytes < ctx.limits.highWaterBytes) {
      frame = encodeData({ id: NO_ID, protocol, topic, expiresAt, payload: text ? payload : Buffer.from(payload.buffer, payload.byteOffset, bodyLength), durable: true }, 0, bodyLength)
      input = { destination: dest, topic, protocol, head: text ? 1 : 0, payload: frame.subarray(frame.length - bodyLength), expiresAt, writeBehindMs: this.liveWriteBehindMs }
    } else input = { destination: dest, topic, protocol, payload: storedBytes(payload, bodyLength), expiresAt }
    let item: OutItem | undefined
    const accepted = options.accepted
    let entry: Appended
    try {
      entry = outbox.add(input, (err, written) => {
        if (err === undefined) {
          // Accepted once where the peer is is stored too: a restart can then reach it by itself.
          if (accepted) this.tellAccepted(dest, entry.id, accepted)
          if (!written) this.unwritten(dest, st, bytes)
          else {
            if (!item) st.slow--
            this.appended(dest, st, bytes, !item)
          }
        } else {
          if (!item) st.slow--
          else (item.durable as DurableEntry).unstored = true // it may still arrive; nothing to remove then
          this.appended(dest, st, bytes, false)
          this.settle(entry.seq, err)
        }
      })
    } catch (err) {
      this.flushing.drainWhen(dest, () => !this.full(dest, counted))
      return this.refuse(err instanceof Error ? err : new MMError('ERR_STORAGE_UNAVAILABLE', describe(err)), callback)
    }
    st.appending++
    st.appendingBytes += bytes
    if (callback) this.callbacks.set(entry.seq, callback)
    if (frame && outbox.isReserved(entry.seq)) {
      st.last = entry.seq
      st.inMemory++
      this.writeId(frame, entry.seq)
      item = this.outItem(frame, entry.seq, expiresAt, entry)
      peer.queue.push(item)
      peer.queuedBytes += frame.length
      if (peer.channel) this.flushing.flush(peer)
      else this.dialling.ensureChannel(peer)
    } else {
      st.caughtUp = false
      st.slow++
    }
    this.sync(peer)
    return this.underHighWater(st, dest, peer)
  }

  private tellAccepted(dest: string, id: string, accepted: (id: string) => void): void {
    void this.addresses.pending(dest).then(() => {
      try {
        accepted(id)
      } catch (err) {
        this.ctx.logger.error({ err }, 'an accepted() callback threw')
      }
    })
  }

  /** A send refused before it reached the outbox: its callback (or the log) hears why. */
  private refuse(err: Error, callback: ((err: Error | null) => void) | undefined): false {
    if (callback) queueMicrotask(() => callback(err))
    else this.ctx.logger.warn({ err }, 'message not accepted into the outbox')
    return false
  }

  /**
   * False (the message is taken; slow down) past a high-water mark: appends not yet written
   * (`drain` once they are), or, while a session to the peer is up, its unacknowledged bytes in
   * the outbox (`drain` once under half of it, or once the session is gone). The second keeps a
   * sender that waits for `drain` paced by a connected peer, far below the outbox's bound:
   * otherwise the outbox fills to the bound and the sends past it are refused (ERR_QUEUE_FULL),
   * which a sender that takes false for back-pressure would miss. A peer that is away is what the
   * outbox is for: it takes messages up to its bound then.
   */
  private underHighWater(st: Loaded, dest: string, peer: Peer): boolean {
    const high = this.ctx.limits.highWaterBytes
    if (st.appending > APPENDS_HIGH_WATER || st.appendingBytes >= high) {
      st.wantsDrain = true
      return false
    }
    const outbox = this.outbox
    if (outbox && peer.channel && (outbox.counter(dest)?.bytes ?? 0) >= high) {
      this.flushing.drainWhen(dest, () => !peer.channel || (outbox.counter(dest)?.bytes ?? 0) < high / 2)
      return false
    }
    return true
  }

  /** A send made while the outbox opens (the platform starts): appended once it is open. */
  private sendWhenOpen(peer: Peer, input: OutboxInput, counted: number, expireAfter: number, options: SendOptions): boolean {
    const ctx = this.ctx
    const dest = input.destination
    const callback = options.callback
    const st = this.state(dest)
    st.appending++
    st.appendingBytes += input.payload.length
    st.before++
    st.beforeBytes += counted
    st.caughtUp = false
    st.slow++
    this.sync(peer) // it waits from now on: the peer is not idle (limits.ts evicts idle ones)
    const append = async (): Promise<void> => {
      try {
        await this.opened
      } finally {
        st.before--
        st.beforeBytes -= counted
      }
      const outbox = this.outbox
      if (!outbox) throw new StateError('ERR_CLOSED', 'no storage for the outbox')
      const entry = await outbox.append({ ...input, expiresAt: this.now() + expireAfter })
      if (ctx.closed) {
        // Closed while it was written: it stays in the outbox; its callback hears so now.
        options.accepted?.(entry.id)
        throw new StateError('ERR_CLOSED', 'the platform closed before the message was delivered; it stays in the outbox and is sent after a restart (see the delivered event)')
      }
      const settled = this.early.get(entry.seq)
      if (settled !== undefined) {
        this.early.delete(entry.seq)
        if (callback) callback(settled)
      } else if (callback) this.callbacks.set(entry.seq, callback)
      if (options.accepted) {
        try {
          options.accepted(entry.id)
        } catch (err) {
          ctx.logger.error({ err }, 'an accepted() callback threw')
        }
      }
    }
    this.waitingForOpen++
    append().then(
      () => {
        this.waitingForOpen--
        st.slow--
        this.appended(dest, st, input.payload.length, true)
      },
      (err: unknown) => {
        this.waitingForOpen--
        st.slow--
        this.appended(dest, st, input.payload.length, true)
        const error = err instanceof Error ? err : new MMError('ERR_STORAGE_UNAVAILABLE', describe(err))
        if (callback) callback(error)
        else ctx.logger.warn({ err: error }, 'message not accepted into the outbox')
      }
    )
    return this.underHighWater(st, dest, peer)
  }

  /** Which bound one more message of `bytes` would pass (the outbox checks again when it appends). */
  private full(dest: string, bytes: number): string | undefined {
    const outbox = this.outbox
    if (!outbox) return undefined
    const o = this.options
    const st = this.loaded.get(dest)
    const d = outbox.counter(dest)
    const messages = (d?.messages ?? 0) + (st?.before ?? 0)
    const destBytes = (d?.bytes ?? 0) + (st?.beforeBytes ?? 0)
    const all = outbox.counter() as { messages: number; bytes: number }
    const maxM = o.maxMessagesPerDestination ?? OUTBOX_DEFAULTS.maxMessagesPerDestination
    const maxB = o.maxBytesPerDestination ?? OUTBOX_DEFAULTS.maxBytesPerDestination
    if (messages + 1 > maxM) return `${maxM} messages for this destination`
    if (destBytes + bytes > maxB) return `${maxB} bytes for this destination`
    if (all.messages + 1 > (o.maxMessages ?? OUTBOX_DEFAULTS.maxMessages)) return `${o.maxMessages ?? OUTBOX_DEFAULTS.maxMessages} messages in all`
    if (all.bytes + bytes > (o.maxBytes ?? OUTBOX_DEFAULTS.maxBytes)) return `${o.maxBytes ?? OUTBOX_DEFAULTS.maxBytes} bytes in all`
    return undefined
  }

  /**
   * An append settled before it was written (acknowledged within the write-behind): only a fast
   * path item is, and nothing of it is left in storage or to load.
   */
  private unwritten(dest: string, st: Loaded, bytes: number): void {
    st.appending--
    st.appendingBytes -= bytes
    if (st.wantsDrain && st.appending === 0) {
      st.wantsDrain = false
      this.ctx.host.emit('drain', dest)
    }
  }

  private appended(dest: string, st: Loaded, bytes: number, load: boolean): void {
    st.appending--
    st.appendingBytes -= bytes
    if (st.wantsDrain && st.appending === 0) {
      st.wantsDrain = false
      this.ctx.host.emit('drain', dest)
    }
    if (this.ctx.closed) return
    const peer = this.ctx.table.admit(dest, true)
    if (!peer) return // the outbox keeps it; resume() after a restart, or a later send, picks it up
    void this.addresses.pending(dest)
    this.sync(peer)
    if (load) this.load(peer)
  }

  private state(dest: string): Loaded {
    let st = this.loaded.get(dest)
    if (!st) {
      // Caught up when storage holds nothing of this peer yet: sends may take the fast path.
      const caughtUp = (this.outbox?.counter(dest)?.messages ?? 0) === 0
      st = { inMemory: 0, last: -1, loading: false, again: false, before: 0, beforeBytes: 0, appending: 0, appendingBytes: 0, wantsDrain: false, caughtUp, slow: 0 }
      this.loaded.set(dest, st)
    }
    return st
  }

  /** peer.stored: what the outbox holds for it beyond what is in memory. */
  private sync(peer: Peer): void {
    const st = this.loaded.get(peer.signId)
    const total = this.outbox?.counter(peer.signId)?.messages ?? 0
    peer.stored = Math.max(0, total + (st?.before ?? 0) - (st?.inMemory ?? 0))
  }

  /** Reads the next outbox messages of `peer` into its queue, up to the window. */
  private load(peer: Peer): void {
    const outbox = this.outbox
    const st = this.state(peer.signId)
    if (!outbox || this.ctx.closed) return
    if (st.loading) {
      st.again = true
      return
    }
    const room = this.window - st.inMemory
    // Not caught up: read even when the counters say nothing waits, to learn that it is so.
    if (room <= 0 || (peer.stored === 0 && st.caughtUp)) return
    st.loading = true
    st.again = false
    outbox.pending(peer.signId, { afterSeq: st.last < 0 ? undefined : st.last, limit: room }).then(
      (messages) => {
        st.loading = false
        if (this.ctx.closed) return
        let added = 0
        for (const m of messages) {
          if (m.seq <= st.last) continue
          st.last = m.seq
          st.inMemory++
          added++
          const item = this.item(m, m.payload[0] === 1 ? m.payload.toString('utf8', 1) : m.payload.subarray(1), {
            id: m.id,
            destination: m.destination,
            seq: m.seq,
            expiresAt: m.expiresAt,
            bytes: m.bytes,
            topic: m.topic
          })
          peer.queue.push(item)
          peer.queuedBytes += item.frame.length
        }
        this.sync(peer)
        if (added) {
          if (peer.channel) this.flushing.flush(peer)
          else this.dialling.ensureChannel(peer)
        }
        if (st.again || messages.length === room) this.load(peer)
        else if (st.slow === 0) st.caughtUp = true // storage has nothing more: sends may go straight out
      },
      (err: unknown) => {
        st.loading = false
        if (!this.ctx.closed) this.ctx.logger.error({ err, peer: peer.signId }, 'outbox: cannot read pending messages')
      }
    )
  }

  /** An in-memory item for a stored message: its frame carries the durable id. */
  private item(m: OutboxEntry & { topic: string; protocol: string }, payload: string | Buffer, durable: DurableEntry): OutItem {
    const frame = encodeData({ id: NO_ID, protocol: m.protocol, topic: m.topic, expiresAt: m.expiresAt, payload, durable: true })
    this.writeId(frame, m.seq)
    return this.outItem(frame, m.seq, m.expiresAt, durable)
  }

  /** Writes the durable id of `seq` (our stream, then seq) into a DATA frame made with NO_ID. */
  private writeId(frame: Buffer, seq: number): void {
    frame.writeUInt32BE(this.stream0, DATA_ID_AT)
    frame.writeUInt32BE(this.stream1, DATA_ID_AT + 4)
    frame.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), DATA_ID_AT + 8)
    frame.writeUInt32BE(seq >>> 0, DATA_ID_AT + 12)
  }

  private outItem(frame: Buffer, seq: number, expiresAt: number, durable: DurableEntry): OutItem {
    return {
      key: -(seq + 1),
      seq: this.order++,
      frame,
      expiresAt,
      realtime: false,
      writeBy: Infinity,
      callback: undefined, // fates go through delivered()/failed(): the callback may belong to a send before a restart
      channel: undefined,
      durable
    }
  }

  ackKey(buf: Buffer, at = 0): number | undefined {
    if (!this.outbox || buf.readUInt32BE(at) !== this.stream0 || buf.readUInt32BE(at + 4) !== this.stream1) return undefined
    // Two 32-bit reads, not a BigInt per ACK: seq stays under 2^53 (a safe integer).
    return -(buf.readUInt32BE(at + 8) * 0x1_0000_0000 + buf.readUInt32BE(at + 12) + 1)
  }

  delivered(item: OutItem): void {
    const d = item.durable
    if (!d || !this.outbox) return
    this.settleLoaded(d, null)
    this.ctx.host.emit('delivered', { id: d.id, destination: d.destination, topic: d.topic })
  }

  failed(item: OutItem, err: Error): void {
    const d = item.durable
    if (!d || !this.outbox) return
    if (err instanceof MMError && err.code === 'ERR_CLOSED') return // stays in the outbox
    this.settleLoaded(d, err)
    this.ctx.host.emit('failed', { id: d.id, destination: d.destination, topic: d.topic, error: err })
  }

  /**
   * An in-memory outbox message is settled: its sender hears now, its removal is queued (group
   * commit). Told before the removal is written: the outbox hides a message being removed from
   * listings and counts at once, so `outbox.list()` agrees with the event. A crash before that
   * write sends it again after the restart; the receiver drops it by its id.
   */
  private settleLoaded(d: DurableEntry, result: Error | null): void {
    const outbox = this.outbox as OutboxStore
    const dest = d.destination
    const st = this.state(dest)
    this.settle(d.seq, result)
    st.inMemory--
    if (!d.unstored) outbox.discard(d, this.removeFailed)
    const peer = this.ctx.peers.get(dest)
    if (!peer || this.ctx.closed) return
    this.sync(peer)
    if (st.inMemory === 0 && st.before === 0 && st.appending === 0 && !st.loading && peer.stored === 0 && st.caughtUp) {
      this.loaded.delete(dest) // nothing of it in memory or on its way: forget its window
      return
    }
    if (!st.caughtUp && st.inMemory <= this.window / 2) this.load(peer)
  }

  private readonly removeFailed = (err: Error, dest: string): void => {
    if (!this.ctx.closed) this.ctx.logger.error({ err, peer: dest }, 'outbox: cannot remove a settled message; it is sent again after a restart')
  }

  private settle(seq: number, result: Error | null): void {
    const cb = this.callbacks.get(seq)
    if (cb) {
      this.callbacks.delete(seq)
      queueMicrotask(() => cb(result))
    } else if (this.waitingForOpen > 0 && this.early.size < 65_536) this.early.set(seq, result) // the append's continuation has not run yet
  }

  /** The outbox removed an expired message: drop it from memory, tell its sender. */
  private onExpired(dest: string, seq: number, id: string, topic: string | undefined, err: DeliveryError): void {
    const peer = this.ctx.peers.get(dest)
    const key = -(seq + 1)
    if (peer) {
      const i = peer.queue.findIndex((q) => q.key === key)
      const inflight = peer.inflight.get(key)
      if (i >= 0 || inflight) {
        if (i >= 0) {
          peer.queuedBytes -= (peer.queue[i] as OutItem).frame.length
          peer.queue.splice(i, 1)
        } else peer.inflight.delete(key)
        const st = this.state(dest)
        st.inMemory--
      }
      this.sync(peer)
    }
    this.settle(seq, err)
    this.ctx.host.emit('failed', { id, destination: dest, topic, error: err })
  }

  // ---- the user's view ----

  /** Pending messages, oldest first per destination (at most `limit`). */
  async list(limit = 1000): Promise<PendingMessage[]> {
    await this.opened
    const outbox = this.requireOutbox()
    const now = this.now()
    return (await outbox.list(limit)).map((m) => ({ id: m.id, destination: m.destination, topic: m.topic, protocol: m.protocol, size: m.bytes, age: now - m.createdAt, expiresAt: m.expiresAt }))
  }

  /**
   * Cancels a pending message: it is removed, `failed` fires with ERR_CANCELLED. A message already
   * written to its peer may still arrive. Resolves false when it was not pending.
   */
  async cancel(destination: string, id: string): Promise<boolean> {
    await this.opened
    const outbox = this.requireOutbox()
    const parts = parseMessageId(id)
    if (!parts || parts.stream !== outbox.streamId) return false
    if (!(await outbox.cancel(destination, id))) return false
    const peer = this.ctx.peers.get(destination)
    const key = -(parts.seq + 1)
    const item = peer?.queue.find((q) => q.key === key) ?? peer?.inflight.get(key)
    if (peer && item) {
      const i = peer.queue.indexOf(item)
      if (i >= 0) {
        peer.queue.splice(i, 1)
        peer.queuedBytes -= item.frame.length
      } else peer.inflight.delete(key)
      this.state(destination).inMemory--
    }
    if (peer) this.sync(peer)
    const err = new DeliveryError('ERR_CANCELLED', `message ${id} to ${destination} was cancelled`)
    this.settle(parts.seq, err)
    this.ctx.host.emit('failed', { id, destination, topic: item?.durable?.topic, error: err })
    return true
  }

  /** Removes expired messages now (by the outbox's clock); resolves with how many. */
  async expire(): Promise<number> {
    await this.opened
    return this.requireOutbox().expire()
  }

  private requireOutbox(): OutboxStore {
    if (!this.outbox) throw new StateError(this.ctx.closed ? 'ERR_CLOSED' : 'ERR_NOT_READY', 'the outbox is not open')
    return this.outbox
  }

  // ---- receiving (delivery-receive.ts) and where peers are (stored-node-info.ts) ----

  receive(peer: Peer, frame: DataFrame, via: Channel): boolean {
    return this.receiving.receive(peer, frame, via)
  }

  recordNow(peer: Peer): boolean {
    return this.receiving.recordNow(peer)
  }

  /** Resolves once the ids handled from `signId` so far are recorded (their ACKs are then due). */
  recorded(signId: string): Promise<void> {
    return this.receiving.recorded(signId)
  }

  nodeInfoFor(signId: string, directory: (signId: string) => Promise<NodeInfo>): Promise<NodeInfo> {
    return this.addresses.nodeInfoFor(signId, directory, (this.outbox?.stats(signId).messages ?? 0) > 0)
  }

  dialFailed(signId: string): void {
    this.addresses.dialFailed(signId)
  }

  /** Writes what is pending (outbox, seen ids). Idempotent. */
  async close(): Promise<void> {
    this.openedNow(new StateError('ERR_CLOSED', 'the platform closed before its outbox opened'))
    // Their sends stay in the outbox; a restart delivers them (then only the events tell).
    const closed = new StateError('ERR_CLOSED', 'the platform closed before the message was delivered; it stays in the outbox and is sent after a restart (see the delivered event)')
    for (const cb of this.callbacks.values()) queueMicrotask(() => cb(closed))
    this.callbacks.clear()
    await this.opening?.catch(() => {})
    await Promise.all([this.outbox?.close(), this.receiving.close()])
  }
}
