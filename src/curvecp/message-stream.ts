/**
 * The reliable byte stream that CurveCP's message layer carries (curvecp.org/messages.html),
 * one per direction pair, as DJB's `curvecpmessage` speaks it: the sender cuts the stream into
 * blocks of at most 1024 bytes, each sent in a message with a fresh id; the receiver answers
 * with ranges of stream positions it holds; blocks not acknowledged in time are sent again.
 * This module is the state machine only: it gets decrypted messages through {@link receive} and
 * hands messages to send to `transmit`. Clock and timers are injected, so tests run on virtual
 * time.
 *
 *   sender:   open ──end()──▶ ending (EOF queued) ──EOF acknowledged──▶ ended
 *   receiver: open ──all bytes up to the peer's EOF──▶ ended
 *   either:   any ──fail (give-up timeout, destroy)──▶ failed
 *
 * Sender
 * - Round-trip time: each transmission carries a new id; an acknowledgement naming an id gives
 *   an unambiguous sample. Jacobson's estimator gives the retransmission timeout (RTO), clamped
 *   and doubled on each expiry until a new sample.
 * - Congestion control: a window of blocks in flight, slow start then additive increase
 *   (one block per window of acknowledged blocks), halved at most once per round trip on loss.
 *   Loss is a block whose RTO expired, or one sent before three blocks that were acknowledged
 *   (selective ranges make this visible). Bursts are cut into slices that yield to I/O.
 * - Flow control: the message format has no window field, so like the reference we never send
 *   past the first unacknowledged byte plus `sendWindowBytes` (the reference receiver drops
 *   anything beyond 128 KiB past what it has delivered).
 *
 * Receiver
 * - Out-of-order blocks are kept (bounded by `receiveWindowBytes` and a block count) and
 *   acknowledged as ranges 2..6, with range boundaries on block boundaries. In-order bytes go
 *   to `onData` at once. Every message with a nonzero id is acknowledged; acknowledgements of
 *   one burst are batched into one message, or ride on outgoing data.
 * - Range 1 ends one past the peer's EOF position once every byte before it arrived (the
 *   reference's way to acknowledge the EOF).
 */
import { InvalidArgumentError, MMError, ProtocolError } from '../errors.js'
import {
  EOF_FAILURE,
  EOF_SUCCESS,
  MAX_ACK_RANGES,
  MAX_FIRST_GAP,
  MAX_MESSAGE_BYTES,
  MAX_SHORT_RANGE,
  decodeMessage,
  encodeMessage,
  maxBlockBytesFor,
  type AckRange,
  type EndOfStream,
  type StreamMessage
} from './message-layer.js'

// ---- Implementation constants (options override) ----
/** Bytes past the first unacknowledged byte the sender may have sent (the reference receiver's buffer). */
export const SEND_WINDOW_BYTES = 131_072
/** Bytes past the delivered ones the receiver keeps (out-of-order blocks). */
export const RECEIVE_WINDOW_BYTES = 131_072
/** Out-of-order blocks kept at most (bounds memory when blocks are tiny). */
export const MAX_OUT_OF_ORDER_BLOCKS = 4096
/** Blocks tracked by the sender at most (in flight or waiting to be sent again). */
export const MAX_BLOCKS_IN_FLIGHT = 1024
/** Congestion window at the start and after an RTO, in blocks. */
export const INITIAL_WINDOW_BLOCKS = 8
export const MIN_WINDOW_BLOCKS = 2
/** Blocks sent in one go before yielding to I/O. */
export const MAX_BURST_BLOCKS = 64
/** Blocks acknowledged after a later-sent block before it counts as lost. */
export const REORDER_THRESHOLD = 3
/** RTO before any sample (the reference starts at 1 s). */
export const INITIAL_RTO_MS = 1000
export const MIN_RTO_MS = 20
export const MAX_RTO_MS = 10_000
/** The stream fails when data stays unacknowledged this long. */
export const GIVE_UP_MS = 60_000
/** write() says false above this many bytes waiting (queued or unacknowledged). */
export const HIGH_WATER_BYTES = 1024 * 1024
/** write() throws above this many bytes waiting: the caller ignored back-pressure. */
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024

/** Time and timers, injectable (tests run on virtual time). Times are milliseconds. */
export interface StreamClock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  /** Runs `fn` after pending I/O (setImmediate in Node). */
  setImmediate(fn: () => void): void
}

/** The real clock: performance.now(), unref'd timers, setImmediate. */
export const systemClock: StreamClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref()
    return t
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setImmediate: (fn) => {
    setImmediate(fn)
  }
}

export interface MessageStreamHandlers {
  /** Sends one encoded message (the transport seals it into a packet). */
  transmit(message: Buffer): void
  /** In-order bytes from the peer. */
  onData?(data: Buffer): void
  /** The peer's stream ended (every byte delivered): success or failure. */
  onEnd?(eof: typeof EOF_SUCCESS | typeof EOF_FAILURE): void
  /** Our EOF was acknowledged: everything we wrote arrived. */
  onFinish?(): void
  /** Buffered bytes fell below the high-water mark after write() said false. */
  onDrain?(): void
  /** The stream failed (give-up timeout); no more callbacks follow. */
  onError?(err: MMError): void
}

export interface MessageStreamOptions extends MessageStreamHandlers {
  clock?: StreamClock
  /** Largest message to send now (1088; the Initiate's room before the handshake completes). */
  maxMessageBytes?: number
  /** Largest block, at most 1024 (tests use 1 for one-byte blocks). */
  maxBlockBytes?: number
  sendWindowBytes?: number
  receiveWindowBytes?: number
  maxOutOfOrderBlocks?: number
  maxBlocksInFlight?: number
  initialWindowBlocks?: number
  initialRtoMs?: number
  minRtoMs?: number
  maxRtoMs?: number
  giveUpMs?: number
  highWaterBytes?: number
  maxBufferedBytes?: number
  /** Start sending at once (default true); false waits for {@link MessageStream.start}. */
  started?: boolean
}

/** A block of our stream: sent, waiting for its acknowledgement. */
interface Block {
  pos: number
  data: Buffer
  eof: EndOfStream
  /** Id of its latest transmission (0: not sent yet). */
  id: number
  /** Id of the transmission before, while it may still be acknowledged (spurious timeouts). */
  prevId: number
  sentAt: number
  /** Order of its latest transmission among all of ours. */
  txSeq: number
  transmissions: number
  acked: boolean
  /** Counted as lost: waits to be sent again, not in flight. */
  lost: boolean
}

/** A block received ahead of the in-order position. */
interface Held {
  start: number
  end: number
  data: Buffer
}

export type SendState = 'open' | 'ending' | 'ended' | 'failed'
export type ReceiveState = 'open' | 'ended' | 'failed'

/** Counters for tests and stats. */
export interface StreamStats {
  messagesIn: number
  messagesOut: number
  blocksSent: number
  retransmissions: number
  timeouts: number
  /** Timeouts undone because the earlier transmission was acknowledged after all. */
  spuriousTimeouts: number
  fastRetransmits: number
  acksSent: number
  dropped: { malformed: number; beyondWindow: number; afterEof: number; outOfOrderFull: number; duplicate: number }
}

export class MessageStream {
  sendState: SendState = 'open'
  receiveState: ReceiveState = 'open'
  readonly stats: StreamStats = {
    messagesIn: 0,
    messagesOut: 0,
    blocksSent: 0,
    retransmissions: 0,
    timeouts: 0,
    spuriousTimeouts: 0,
    fastRetransmits: 0,
    acksSent: 0,
    dropped: { malformed: 0, beyondWindow: 0, afterEof: 0, outOfOrderFull: 0, duplicate: 0 }
  }

  private readonly h: MessageStreamHandlers
  private readonly clock: StreamClock
  private maxMessage: number
  private readonly maxBlock: number
  private readonly sendWindow: number
  private readonly receiveWindow: number
  private readonly maxHeld: number
  private readonly maxBlocks: number
  private readonly minRto: number
  private readonly maxRto: number
  private readonly giveUpMs: number
  private readonly highWater: number
  private readonly maxBuffered: number
  private started: boolean
  private destroyed = false

  // ---- sender ----
  /** Bytes written, not yet cut into blocks. */
  private queue: Buffer[] = []
  private queueHead = 0
  private queueBytes = 0
  /** Stream position of the first byte not yet acknowledged and released. */
  private sendAcked = 0
  /** Stream position of the next byte to cut into a block. */
  private sendNext = 0
  /** Blocks in stream order. */
  private blocks: Block[] = []
  private readonly byId = new Map<number, Block>()
  private inFlight = 0
  private lostCount = 0
  private eofWanted: EndOfStream = 0
  private eofBlocked = false
  private wantPing = false
  private nextId = 1
  private txSeq = 0
  private cwnd: number
  private ssthresh = Infinity
  private srtt = 0
  private rttvar = 0
  private rto: number
  private recoveryUntil = 0
  /** Window before the latest timeout, restored if the timeout proves spurious. */
  private undo: { cwnd: number; ssthresh: number; rto: number } | undefined
  private lastProgressAt: number
  private needDrain = false
  private pumpScheduled = false

  // ---- receiver ----
  /** Bytes delivered in order. */
  private received = 0
  private held: Held[] = []
  private heldBytes = 0
  private peerEof: EndOfStream = 0
  private peerTotal = 0
  /** Id of the newest message to acknowledge by id (0: reported already). */
  private ackId = 0
  private ackPending = false
  private ackScheduled = false
  /** Bumped whenever what we hold changes; the encoded ranges are cached per version. */
  private receiveVersion = 0
  private rangesVersion = -1
  private rangesCache: AckRange[] | undefined

  // ---- timer ----
  private timer: unknown
  private timerAt = Infinity

  constructor(options: MessageStreamOptions) {
    this.h = options
    this.clock = options.clock ?? systemClock
    this.maxMessage = options.maxMessageBytes ?? MAX_MESSAGE_BYTES
    this.maxBlock = Math.max(1, Math.min(options.maxBlockBytes ?? 1024, 1024))
    this.sendWindow = options.sendWindowBytes ?? SEND_WINDOW_BYTES
    this.receiveWindow = options.receiveWindowBytes ?? RECEIVE_WINDOW_BYTES
    this.maxHeld = options.maxOutOfOrderBlocks ?? MAX_OUT_OF_ORDER_BLOCKS
    this.maxBlocks = options.maxBlocksInFlight ?? MAX_BLOCKS_IN_FLIGHT
    this.cwnd = options.initialWindowBlocks ?? INITIAL_WINDOW_BLOCKS
    this.rto = options.initialRtoMs ?? INITIAL_RTO_MS
    this.minRto = options.minRtoMs ?? MIN_RTO_MS
    this.maxRto = options.maxRtoMs ?? MAX_RTO_MS
    this.giveUpMs = options.giveUpMs ?? GIVE_UP_MS
    this.highWater = options.highWaterBytes ?? HIGH_WATER_BYTES
    this.maxBuffered = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES
    this.started = options.started ?? true
    this.lastProgressAt = this.clock.now()
  }

  // ---------------------------------------------------------------------------------------------
  // Local side

  /** Bytes written and not yet acknowledged by the peer. */
  get bufferedBytes(): number {
    return this.queueBytes + (this.sendNext - this.sendAcked)
  }

  /** Smoothed round-trip time in ms (0 before the first sample). */
  get rttMs(): number {
    return this.srtt
  }

  /** Current retransmission timeout in ms. */
  get rtoMs(): number {
    return this.rto
  }

  /** Congestion window in blocks. */
  get windowBlocks(): number {
    return this.cwnd
  }

  /** Bytes delivered to onData so far. */
  get receivedBytes(): number {
    return this.received
  }

  /**
   * Queues bytes (copied). Returns false when the caller should wait for onDrain.
   * @throws InvalidArgumentError after end(), or when more than maxBufferedBytes would wait.
   */
  write(data: Uint8Array): boolean {
    if (this.sendState !== 'open') throw new InvalidArgumentError(`cannot write: the stream is ${this.sendState}`)
    if (data.length === 0) return this.bufferedBytes < this.highWater
    if (this.bufferedBytes + data.length > this.maxBuffered) {
      throw new MMError('ERR_QUEUE_FULL', `stream buffer full: ${this.bufferedBytes} bytes wait (at most ${this.maxBuffered}); wait for drain`)
    }
    this.queue.push(Buffer.from(data))
    this.queueBytes += data.length
    this.schedulePump()
    const ok = this.bufferedBytes < this.highWater
    if (!ok) this.needDrain = true
    return ok
  }

  /** Ends our side after what was written: success (default) or failure. Idempotent. */
  end(eof: typeof EOF_SUCCESS | typeof EOF_FAILURE = EOF_SUCCESS): void {
    if (this.sendState !== 'open') return
    this.sendState = 'ending'
    this.eofWanted = eof
    if (eof === EOF_FAILURE) this.dropQueued()
    this.schedulePump()
  }

  /**
   * Sends a block without data at once (the reference client's "ping"), so that the peer has a
   * message to acknowledge even before we have data: it opens the CurveCP session.
   */
  ping(): void {
    this.wantPing = true
    this.schedulePump()
  }

  /**
   * Sends a pure acknowledgement now, even with nothing new to acknowledge: a server answers an
   * Initiate at once, so that the client learns the session is up.
   */
  acknowledge(): void {
    if (this.destroyed) return
    this.sendAck()
  }

  /** Starts sending (after the handshake, for a client) with this much room per message. */
  start(maxMessageBytes?: number, rttSampleMs?: number): void {
    if (maxMessageBytes !== undefined) this.maxMessage = maxMessageBytes
    if (rttSampleMs !== undefined && rttSampleMs > 0) this.rttSample(rttSampleMs)
    this.started = true
    this.schedulePump()
  }

  /** Changes the room per message (the client's Initiate room, then 1088). */
  setMaxMessageBytes(bytes: number): void {
    this.maxMessage = bytes
    this.schedulePump()
  }

  /**
   * Gives up at once: one message with a failure EOF after everything sent so far goes out now
   * (outside the windows, not repeated), then the stream is destroyed. The peer ends its side
   * with a failure when it arrives. Idempotent.
   */
  abort(): void {
    if (this.destroyed) return
    if (this.started && this.sendState !== 'ended') {
      const id = this.nextId
      this.nextId = this.nextId === 0xffff_ffff ? 1 : this.nextId + 1
      this.send({ id, acknowledging: this.takeAckId(), ranges: this.ackRanges(), eof: EOF_FAILURE, offset: this.sendNext, data: EMPTY })
    }
    this.destroy()
  }

  /** Stops every timer and drops every buffer; no callback follows. Idempotent. */
  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    if (this.sendState !== 'ended') this.sendState = 'failed'
    if (this.receiveState !== 'ended') this.receiveState = 'failed'
    this.clearTimer()
    this.dropQueued()
    this.blocks = []
    this.byId.clear()
    this.held = []
    this.heldBytes = 0
  }

  get isDestroyed(): boolean {
    return this.destroyed
  }

  /** Nothing of ours is waiting: every byte and the EOF (if any) acknowledged. */
  get idle(): boolean {
    return this.queueBytes === 0 && this.blocks.length === 0
  }

  private dropQueued(): void {
    this.queue = []
    this.queueHead = 0
    this.queueBytes = 0
  }

  // ---------------------------------------------------------------------------------------------
  // Remote side

  /** A decrypted message from the peer. Malformed ones are dropped and counted, never thrown. */
  receive(bytes: Uint8Array): void {
    if (this.destroyed) return
    let m: StreamMessage
    try {
      m = decodeMessage(bytes)
    } catch {
      this.stats.dropped.malformed++
      return
    }
    this.stats.messagesIn++
    const now = this.clock.now()
    if (this.blocks.length) this.onAcknowledgement(m, now)
    if (this.destroyed) return
    const accepted = this.onBlock(m)
    if (this.destroyed) return
    if (m.id !== 0 && accepted) {
      this.ackId = m.id
      this.ackPending = true
      this.scheduleAck()
    }
    this.schedulePump()
  }

  // ---------------------------------------------------------------------------------------------
  // Receiver

  /** Takes the data and EOF of a message. False when dropped unacknowledged (beyond the window). */
  private onBlock(m: StreamMessage): boolean {
    const d = m.data.length
    const start = m.offset
    const end = start + d
    if (d === 0 && m.eof === 0) return true
    if (end > this.received + this.receiveWindow) {
      this.stats.dropped.beyondWindow++
      return false
    }
    if (this.peerEof !== 0 && end > this.peerTotal) {
      this.stats.dropped.afterEof++
      return true
    }
    if (m.eof !== 0) {
      if (this.peerEof !== 0 && end !== this.peerTotal) {
        this.stats.dropped.afterEof++
        return true
      }
      if (end < this.received || this.heldEnd() > end) {
        // An EOF before bytes we already hold: not a stream we can deliver.
        this.stats.dropped.afterEof++
        return true
      }
      this.peerEof = m.eof
      this.peerTotal = end
    }
    if (end > this.received) {
      const data = Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data)
      if (start <= this.received) {
        this.deliver(data.subarray(this.received - start), end)
        if (this.destroyed) return true
        this.drainHeld()
        if (this.destroyed) return true
      } else if (!this.hold(start, end, Buffer.from(data))) {
        return false
      }
    } else if (d > 0) {
      this.stats.dropped.duplicate++
    }
    this.checkPeerEnd()
    return true
  }

  private heldEnd(): number {
    const last = this.held[this.held.length - 1]
    return last ? last.end : 0
  }

  private deliver(data: Buffer, end: number): void {
    this.received = end
    this.receiveVersion++
    if (data.length) this.h.onData?.(data)
  }

  /** Stores an out-of-order block; false when full (the block is dropped unacknowledged). */
  private hold(start: number, end: number, data: Buffer): boolean {
    // Binary search for the first held block starting at or after `start`.
    let lo = 0
    let hi = this.held.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.held[mid] as Held).start < start) lo = mid + 1
      else hi = mid
    }
    const prev = this.held[lo - 1]
    const next = this.held[lo]
    if ((prev && prev.end >= end) || (next && next.start === start && next.end >= end)) {
      this.stats.dropped.duplicate++
      return true
    }
    if (this.held.length >= this.maxHeld || this.heldBytes + data.length > this.receiveWindow) {
      this.stats.dropped.outOfOrderFull++
      return false
    }
    this.held.splice(lo, 0, { start, end, data })
    this.heldBytes += data.length
    this.receiveVersion++
    return true
  }

  private drainHeld(): void {
    let n = 0
    while (n < this.held.length) {
      const b = this.held[n] as Held
      if (b.start > this.received) break
      n++
      this.heldBytes -= b.data.length
      if (b.end > this.received) {
        this.deliver(b.data.subarray(this.received - b.start), b.end)
        if (this.destroyed) return
      }
    }
    if (n) this.held.splice(0, n)
  }

  private checkPeerEnd(): void {
    if (this.receiveState !== 'open' || this.peerEof === 0) return
    // A success EOF ends the stream once every byte before it is here; a failure ends it at
    // once (the bytes missing before it will not come: the peer gave up).
    if (this.received !== this.peerTotal && this.peerEof !== EOF_FAILURE) return
    this.receiveState = 'ended'
    this.receiveVersion++
    this.held = []
    this.heldBytes = 0
    this.h.onEnd?.(this.peerEof === EOF_FAILURE ? EOF_FAILURE : EOF_SUCCESS)
    this.maybeFinished()
  }

  /** The ranges we hold: [0, received) (+1 for a complete EOF), then held blocks, merged. */
  ackRanges(): AckRange[] {
    if (this.rangesCache && this.rangesVersion === this.receiveVersion) return this.rangesCache
    this.rangesCache = this.computeAckRanges()
    this.rangesVersion = this.receiveVersion
    return this.rangesCache
  }

  private computeAckRanges(): AckRange[] {
    const first = this.received + (this.receiveState === 'ended' && this.received === this.peerTotal ? 1 : 0)
    const ranges: AckRange[] = [{ start: 0, end: first }]
    let prevEnd = first
    let i = 0
    while (i < this.held.length && ranges.length < MAX_ACK_RANGES) {
      const b = this.held[i] as Held
      const gap = b.start - prevEnd
      if (gap > (ranges.length === 1 ? MAX_FIRST_GAP : MAX_SHORT_RANGE)) break
      // Merge touching or overlapping blocks while the range stays within 65535 bytes.
      let end = b.end
      if (end - b.start > MAX_SHORT_RANGE) break
      i++
      while (i < this.held.length) {
        const c = this.held[i] as Held
        if (c.start > end || Math.max(end, c.end) - b.start > MAX_SHORT_RANGE) break
        end = Math.max(end, c.end)
        i++
      }
      ranges.push({ start: b.start, end })
      prevEnd = end
    }
    return ranges
  }

  private scheduleAck(): void {
    if (this.ackScheduled) return
    this.ackScheduled = true
    this.clock.setImmediate(() => {
      this.ackScheduled = false
      if (this.ackPending && !this.destroyed) this.sendAck()
    })
  }

  private sendAck(): void {
    this.ackPending = false
    this.stats.acksSent++
    this.send({ id: 0, acknowledging: this.takeAckId(), ranges: this.ackRanges(), eof: 0, offset: 0, data: EMPTY })
  }

  private takeAckId(): number {
    // Name each received id once: the reference measures its RTT from it, and a second mention
    // after the block was acknowledged would read as a huge round trip.
    const id = this.ackId
    this.ackId = 0
    return id
  }

  private send(m: StreamMessage): void {
    const message = encodeMessage(m, this.maxMessage)
    this.stats.messagesOut++
    this.h.transmit(message)
  }

  // ---------------------------------------------------------------------------------------------
  // Sender: acknowledgements

  private onAcknowledgement(m: StreamMessage, now: number): void {
    // RTT sample from the id this message names.
    if (m.acknowledging !== 0) {
      const b = this.byId.get(m.acknowledging)
      if (b && !b.acked) {
        if (b.prevId === m.acknowledging) {
          // The transmission before a timeout arrived after all: the timeout was spurious (the
          // round trip grew past the RTO, nothing was lost). Undo its window cut (Eifel).
          this.spuriousTimeout()
        } else {
          this.rttSample(now - b.sentAt)
          // A repeat arrived, not the original: the timeout was real.
          if (b.transmissions > 1) this.undo = undefined
        }
        // A block without data has no range to be acknowledged by; its id is the proof.
        if (b.data.length === 0 && b.eof === 0) this.markAcked(b, now)
      }
    }
    let highestTx = 0
    for (const r of m.ranges) {
      if (r.end <= r.start) continue
      // Blocks fully inside [start, end) are acknowledged; an EOF needs one position more.
      for (const b of this.blocks) {
        if (b.pos >= r.end) break
        if (b.acked || b.pos < r.start) continue
        const stop = b.pos + b.data.length + (b.eof !== 0 ? 1 : 0)
        if (stop > r.end) continue
        // Only a block sent once tells which transmission arrived: the RACK rule counts those.
        if (b.transmissions === 1 && b.txSeq > highestTx) highestTx = b.txSeq
        this.markAcked(b, now)
      }
    }
    this.release()
    if (highestTx) this.detectLoss(highestTx, now)
    this.maybeFinished()
    if (this.needDrain && this.bufferedBytes < this.highWater && this.sendState === 'open') {
      this.needDrain = false
      this.h.onDrain?.()
    }
  }

  private markAcked(b: Block, now: number): void {
    b.acked = true
    if (b.id) this.byId.delete(b.id)
    if (b.prevId) this.byId.delete(b.prevId)
    if (b.lost) this.lostCount--
    else if (b.transmissions > 0) this.inFlight--
    b.lost = false
    this.lastProgressAt = now
    // Congestion window: slow start below ssthresh, else one block per window.
    if (this.cwnd < this.ssthresh) this.cwnd += 1
    else this.cwnd += 1 / this.cwnd
    if (this.cwnd > this.maxBlocks) this.cwnd = this.maxBlocks
  }

  /** Drops acknowledged blocks at the front; advances sendAcked. */
  private release(): void {
    let n = 0
    while (n < this.blocks.length) {
      const b = this.blocks[n] as Block
      if (!b.acked) break
      this.sendAcked = b.pos + b.data.length
      n++
    }
    if (n) this.blocks.splice(0, n)
  }

  /** Blocks sent before the latest acknowledged transmission by REORDER_THRESHOLD are lost. */
  private detectLoss(highestTx: number, now: number): void {
    let lost = 0
    for (const b of this.blocks) {
      if (b.acked || b.lost || b.transmissions === 0) continue
      if (b.txSeq + REORDER_THRESHOLD <= highestTx) {
        this.markLost(b)
        lost++
      }
    }
    if (lost) {
      this.stats.fastRetransmits += lost
      this.congestionEvent(now, false)
    }
  }

  private markLost(b: Block): void {
    b.lost = true
    this.inFlight--
    this.lostCount++
  }

  private congestionEvent(now: number, timeout: boolean): void {
    if (now < this.recoveryUntil && !timeout) return
    this.ssthresh = Math.max(this.cwnd / 2, MIN_WINDOW_BLOCKS)
    this.cwnd = timeout ? MIN_WINDOW_BLOCKS : this.ssthresh
    this.recoveryUntil = now + Math.max(this.srtt, this.minRto)
  }

  private spuriousTimeout(): void {
    const undo = this.undo
    if (!undo) return
    this.undo = undefined
    this.stats.spuriousTimeouts++
    this.cwnd = Math.max(this.cwnd, undo.cwnd)
    this.ssthresh = undo.ssthresh
    // The round trip is longer than we thought: keep the backed-off timeout until a new sample.
    this.rto = Math.max(this.rto, undo.rto)
    // Blocks counted lost by the timeout are most likely in flight: stop sending them again.
    for (const b of this.blocks) {
      if (b.lost && b.transmissions > 0) {
        b.lost = false
        this.lostCount--
        this.inFlight++
      }
    }
  }

  private rttSample(rtt: number): void {
    if (!(rtt >= 0)) return
    if (this.srtt === 0) {
      this.srtt = rtt
      this.rttvar = rtt / 2
    } else {
      const delta = rtt - this.srtt
      this.srtt += delta / 8
      this.rttvar += (Math.abs(delta) - this.rttvar) / 4
    }
    // Jacobson's timeout, with a margin of half an RTT when the variance has settled to nothing:
    // a timeout equal to the round trip would fire on blocks whose acknowledgement is arriving.
    this.rto = Math.min(this.maxRto, Math.max(this.minRto, this.srtt + Math.max(4 * this.rttvar, this.srtt / 2)))
  }

  private maybeFinished(): void {
    if (this.sendState !== 'ending' || this.queueBytes !== 0 || !this.eofBlocked || this.blocks.length !== 0) return
    this.sendState = 'ended'
    this.h.onFinish?.()
  }

  // ---------------------------------------------------------------------------------------------
  // Sender: transmission

  private schedulePump(): void {
    if (this.pumpScheduled || this.destroyed || !this.started) return
    this.pumpScheduled = true
    queueMicrotask(() => {
      this.pumpScheduled = false
      this.pump()
    })
  }

  private pump(): void {
    if (this.destroyed || !this.started) return
    const now = this.clock.now()
    let sent = 0
    while (sent < MAX_BURST_BLOCKS) {
      if (this.inFlight >= Math.max(1, Math.floor(this.cwnd))) break
      const b = this.lostCount > 0 ? this.firstLost() : this.newBlock()
      if (!b) break
      this.transmitBlock(b, now)
      sent++
    }
    if (sent === MAX_BURST_BLOCKS && !this.destroyed) {
      // More may go: yield to I/O first (acknowledgements, the peer's data).
      this.clock.setImmediate(() => this.pump())
    }
    if (this.ackPending && !this.ackScheduled) this.sendAck()
    this.armTimer(now)
  }

  private firstLost(): Block | undefined {
    for (const b of this.blocks) if (b.lost) return b
    this.lostCount = 0
    return undefined
  }

  /** Cuts the next block from the queue, if the windows allow. */
  private newBlock(): Block | undefined {
    if (this.blocks.length >= this.maxBlocks) return undefined
    const room = Math.min(this.maxBlock, maxBlockBytesFor(this.maxMessage), this.sendAcked + this.sendWindow - this.sendNext)
    let data: Buffer
    if (this.queueBytes > 0) {
      if (room <= 0) return undefined
      data = this.take(Math.min(room, this.queueBytes))
    } else if ((this.eofWanted !== 0 && !this.eofBlocked) || this.wantPing) {
      data = EMPTY
    } else {
      return undefined
    }
    this.wantPing = false
    let eof: EndOfStream = 0
    if (this.queueBytes === 0 && this.eofWanted !== 0 && !this.eofBlocked) {
      eof = this.eofWanted
      this.eofBlocked = true
    }
    const b: Block = { pos: this.sendNext, data, eof, id: 0, prevId: 0, sentAt: 0, txSeq: 0, transmissions: 0, acked: false, lost: false }
    this.sendNext += data.length
    // The give-up clock runs while something waits for an acknowledgement.
    if (this.blocks.length === 0) this.lastProgressAt = this.clock.now()
    this.blocks.push(b)
    return b
  }

  private take(n: number): Buffer {
    const first = this.queue[this.queueHead] as Buffer
    let out: Buffer
    if (first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.queueHead++
      else this.queue[this.queueHead] = first.subarray(n)
    } else {
      out = Buffer.allocUnsafe(n)
      let at = 0
      while (at < n) {
        const c = this.queue[this.queueHead] as Buffer
        const k = Math.min(c.length, n - at)
        c.copy(out, at, 0, k)
        at += k
        if (k === c.length) this.queueHead++
        else this.queue[this.queueHead] = c.subarray(k)
      }
    }
    this.queueBytes -= n
    if (this.queueHead > 64 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead)
      this.queueHead = 0
    }
    return out
  }

  private transmitBlock(b: Block, now: number): void {
    if (b.prevId) this.byId.delete(b.prevId)
    b.prevId = 0
    if (b.id) {
      // After a timeout the earlier transmission may still be acknowledged: keep its id.
      if (this.undo && b.transmissions === 1) b.prevId = b.id
      else this.byId.delete(b.id)
    }
    const id = this.nextId
    this.nextId = this.nextId === 0xffff_ffff ? 1 : this.nextId + 1
    b.id = id
    this.byId.set(id, b)
    if (b.transmissions > 0) this.stats.retransmissions++
    if (b.lost) {
      b.lost = false
      this.lostCount--
    }
    b.transmissions++
    b.sentAt = now
    b.txSeq = ++this.txSeq
    this.inFlight++
    this.stats.blocksSent++
    this.ackPending = false
    this.send({ id, acknowledging: this.takeAckId(), ranges: this.ackRanges(), eof: b.eof, offset: b.pos, data: b.data })
  }

  // ---------------------------------------------------------------------------------------------
  // Timers: one timer for retransmission and give-up.

  private armTimer(now: number): void {
    if (this.destroyed) return
    if (this.inFlight === 0) {
      if (this.timerAt !== Infinity && this.blocks.length === 0) this.clearTimer()
      return
    }
    const at = this.earliestDeadline()
    if (at >= this.timerAt) return
    this.clearTimer()
    this.timerAt = at
    this.timer = this.clock.setTimeout(() => this.expiredTimer(), Math.max(0, at - now))
  }

  private earliestDeadline(): number {
    let earliest = Infinity
    for (const b of this.blocks) {
      if (!b.acked && !b.lost && b.transmissions > 0 && b.sentAt < earliest) earliest = b.sentAt
    }
    return Math.min(earliest + this.rto, this.lastProgressAt + this.giveUpMs)
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
  }

  private expiredTimer(): void {
    this.timer = undefined
    this.timerAt = Infinity
    if (this.destroyed) return
    const now = this.clock.now()
    if (this.blocks.length && now - this.lastProgressAt >= this.giveUpMs) {
      return this.fail(new ProtocolError('ERR_TIMEOUT', `no acknowledgement for ${Math.round(now - this.lastProgressAt)} ms; giving up`))
    }
    let expired = false
    for (const b of this.blocks) {
      if (!b.acked && !b.lost && b.transmissions > 0 && b.sentAt + this.rto <= now) expired = true
    }
    if (expired) {
      this.undo = { cwnd: this.cwnd, ssthresh: this.ssthresh, rto: this.rto }
      // A timeout means the window's worth in flight is gone (or stuck behind what is): all of
      // it counts as lost and goes again as the shrunken window allows, oldest first.
      for (const b of this.blocks) if (!b.acked && !b.lost && b.transmissions > 0) this.markLost(b)
      this.stats.timeouts++
      this.congestionEvent(now, true)
      this.rto = Math.min(this.maxRto, this.rto * 2)
    }
    this.pump()
    this.armTimer(now)
  }

  private fail(err: MMError): void {
    const onError = this.h.onError
    this.destroy()
    onError?.(err)
  }
}

const EMPTY = Buffer.alloc(0)
