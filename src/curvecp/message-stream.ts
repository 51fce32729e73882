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
 * The stream is the coordinator: it owns these states, the pump, acknowledgement batching and
 * the one timer, and wires four parts:
 * - `rtt.ts`: round-trip estimate and retransmission timeout (RTO), with back-off;
 * - `congestion.ts`: the window of blocks in flight (slow start, additive increase, one cut per
 *   round trip; the timeout cut, undone when the timeout proves spurious);
 * - `send-buffer.ts`: bytes queued, blocks in flight or lost, loss marking, the EOF to send,
 *   flow control (never past the first unacknowledged byte plus `sendWindowBytes`);
 * - `receive-buffer.ts`: in-order delivery, out-of-order blocks held, ranges, the peer's EOF.
 * An incoming message first acknowledges our blocks (an RTT sample from the id it names; ranges
 * that widen the window or reveal losses), then hands its block to the receive buffer; each
 * message with a nonzero id is acknowledged, those of one turn of the event loop together,
 * riding on data when data goes within that turn or the next, else in one pure acknowledgement.
 * The pump runs once per turn (after its I/O): lost blocks first, then new ones, in slices of
 * MAX_BURST_BLOCKS. The timer fires at the oldest block's RTO or at the give-up time; it is not
 * cleared when nothing is in flight, only left to expire.
 *
 * Over 400 lines: the coordinator's states, pump, acknowledgements and timer read as one; the
 * parts that stand alone are already in the four files above.
 */
import { InvalidArgumentError, MMError, ProtocolError } from '../errors.js'
import {
  EOF_FAILURE,
  EOF_SUCCESS,
  MAX_BLOCK_BYTES,
  MAX_MESSAGE_BYTES,
  MessageReader,
  decodeMessageInto,
  encodeMessageHead,
  maxBlockBytesFor,
  type AckRange,
  type EndOfStream,
  type StreamMessage
} from './message-layer.js'
import { RttEstimator } from './rtt.js'
import { CongestionControl, INITIAL_WINDOW_BLOCKS } from './congestion.js'
import { SendBuffer, type Block } from './send-buffer.js'
import { ReceiveBuffer } from './receive-buffer.js'
import { DeadlineTimer, systemClock, type StreamClock } from './stream-clock.js'
import { GIVE_UP_MS, newStreamStats, type MessageStreamHandlers, type MessageStreamOptions, type ReceiveState, type SendState, type StreamStats } from './stream-options.js'

// ---- Implementation constants and public shapes (options override the constants) ----
export { SEND_WINDOW_BYTES, MAX_BLOCKS_IN_FLIGHT, REORDER_THRESHOLD, HIGH_WATER_BYTES, MAX_BUFFERED_BYTES } from './send-buffer.js'
export { RECEIVE_WINDOW_BYTES, MAX_OUT_OF_ORDER_BLOCKS } from './receive-buffer.js'
export { INITIAL_WINDOW_BLOCKS, MIN_WINDOW_BLOCKS } from './congestion.js'
export { INITIAL_RTO_MS, MIN_RTO_MS, MAX_RTO_MS } from './rtt.js'
export { GIVE_UP_MS } from './stream-options.js'
export type { MessageStreamHandlers, MessageStreamOptions, ReceiveState, SendState, StreamStats } from './stream-options.js'
export { systemClock, type StreamClock } from './stream-clock.js'
/** Blocks sent in one go before yielding to I/O. */
export const MAX_BURST_BLOCKS = 64

export class MessageStream {
  sendState: SendState = 'open'
  receiveState: ReceiveState = 'open'
  readonly stats: StreamStats = newStreamStats()

  private readonly handlers: MessageStreamHandlers
  private readonly clock: StreamClock
  private readonly rtt: RttEstimator
  private readonly congestion: CongestionControl
  private readonly sendBuffer: SendBuffer
  private readonly receiveBuffer: ReceiveBuffer
  private readonly reader = new MessageReader()
  /** Inside receive(): the reader is in use. */
  private receiving = false
  private maxMessage: number
  private readonly maxBlock: number
  private readonly giveUpMs: number
  private started: boolean
  private destroyed = false
  private pumpScheduled = false
  private ackPending = false
  /** A pure acknowledgement waited one turn already for data to ride on. */
  private ackWaited = false
  private ackScheduled = false
  /** The timer fired; its check waits for this turn's I/O. */
  private expiryPending = false
  /** Last time a block was acknowledged, or the first one went out: the give-up clock. */
  private lastProgressAt: number
  /** Retransmission and give-up: one timer at the earlier of the two. */
  private readonly timer: DeadlineTimer

  constructor(options: MessageStreamOptions) {
    this.handlers = options
    this.clock = options.clock ?? systemClock
    this.maxMessage = options.maxMessageBytes ?? MAX_MESSAGE_BYTES
    this.maxBlock = Math.max(1, Math.min(options.maxBlockBytes ?? MAX_BLOCK_BYTES, MAX_BLOCK_BYTES))
    this.rtt = new RttEstimator(options)
    this.sendBuffer = new SendBuffer(options)
    this.congestion = new CongestionControl(this.rtt, options.initialWindowBlocks ?? INITIAL_WINDOW_BLOCKS, this.sendBuffer.maxBlocks)
    this.receiveBuffer = new ReceiveBuffer(
      { onData: (data) => this.handlers.onData?.(data), onEnd: (eof) => this.peerEnded(eof) },
      this.stats.dropped,
      options
    )
    this.giveUpMs = options.giveUpMs ?? GIVE_UP_MS
    this.started = options.started ?? true
    this.lastProgressAt = this.clock.now()
    this.timer = new DeadlineTimer(this.clock, () => this.expiredTimer())
  }

  // ---------------------------------------------------------------------------------------------
  // Local side

  /** Bytes written and not yet acknowledged by the peer. */
  get bufferedBytes(): number {
    return this.sendBuffer.bufferedBytes
  }

  /** Smoothed round-trip time in ms (0 before the first sample). */
  get rttMs(): number {
    return this.rtt.srtt
  }

  /** Current retransmission timeout in ms. */
  get rtoMs(): number {
    return this.rtt.rto
  }

  /** Congestion window in blocks. */
  get windowBlocks(): number {
    return this.congestion.cwnd
  }

  /** Bytes delivered to onData so far. */
  get receivedBytes(): number {
    return this.receiveBuffer.received
  }

  /**
   * Queues bytes (copied, unless `owned`: the caller hands the buffer over and never changes it
   * again). Returns false when the caller should wait for onDrain.
   * @throws InvalidArgumentError after end(); MMError `ERR_QUEUE_FULL` when more than
   * maxBufferedBytes would wait.
   */
  write(data: Uint8Array, owned = false): boolean {
    if (this.sendState !== 'open') throw new InvalidArgumentError(`cannot write: the stream is ${this.sendState}`)
    const ok = this.sendBuffer.write(data, owned)
    if (data.length) this.schedulePump()
    return ok
  }

  /** Ends our side after what was written: success (default) or failure. Idempotent. */
  end(eof: typeof EOF_SUCCESS | typeof EOF_FAILURE = EOF_SUCCESS): void {
    if (this.sendState !== 'open') return
    this.sendState = 'ending'
    this.sendBuffer.eofWanted = eof
    if (eof === EOF_FAILURE) this.sendBuffer.dropQueued()
    this.schedulePump()
  }

  /**
   * Sends a block without data at once (the reference client's "ping"), so that the peer has a
   * message to acknowledge even before we have data: it opens the CurveCP session.
   */
  ping(): void {
    this.sendBuffer.wantPing = true
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
    if (rttSampleMs !== undefined && rttSampleMs > 0) this.rtt.sample(rttSampleMs)
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
      const id = this.sendBuffer.newId()
      this.send(id, this.receiveBuffer.takeAckId(), EOF_FAILURE, this.sendBuffer.sendNext, EMPTY, 0)
    }
    this.destroy()
  }

  /** Stops every timer and drops every buffer; no callback follows. Idempotent. */
  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    if (this.sendState !== 'ended') this.sendState = 'failed'
    if (this.receiveState !== 'ended') this.receiveState = 'failed'
    this.timer.clear()
    this.sendBuffer.clear()
    this.receiveBuffer.close()
  }

  get isDestroyed(): boolean {
    return this.destroyed
  }

  /** Nothing of ours is waiting: every byte and the EOF (if any) acknowledged. */
  get idle(): boolean {
    return this.sendBuffer.empty
  }

  /** The ranges we hold: [0, received) (+1 for a complete EOF), then held blocks, merged. */
  ackRanges(): AckRange[] {
    return this.receiveBuffer.ackRanges()
  }

  // ---------------------------------------------------------------------------------------------
  // Remote side

  /**
   * A decrypted message from the peer, arrived at `now` (clock time; read here when not given).
   * Malformed ones are dropped and counted, never thrown.
   */
  receive(bytes: Uint8Array, now = this.clock.now()): void {
    if (this.destroyed) return
    // One reader, reused: nothing keeps the message or its ranges past this call. A receive
    // nested in a handler of this one (a test's synchronous pair) gets its own.
    const m = this.receiving ? new MessageReader() : this.reader
    try {
      decodeMessageInto(bytes, m)
    } catch {
      this.stats.dropped.malformed++
      return
    }
    if (m !== this.reader) return this.receiveMessage(m, now)
    this.receiving = true
    try {
      this.receiveMessage(m, now)
    } finally {
      this.receiving = false
    }
  }

  private receiveMessage(m: StreamMessage, now: number): void {
    this.stats.messagesIn++
    if (this.sendBuffer.blocks.length) this.onAcknowledgement(m, now)
    if (this.destroyed) return
    const accepted = this.receiveBuffer.take(m)
    if (this.destroyed) return
    if (m.id !== 0 && accepted) {
      this.receiveBuffer.acknowledgeId(m.id)
      this.ackPending = true
      // Before the handshake's end (a client) the pump does not run: acknowledge on our own.
      if (!this.started) this.scheduleAck()
    }
    this.schedulePump()
  }

  private peerEnded(eof: typeof EOF_SUCCESS | typeof EOF_FAILURE): void {
    this.receiveState = 'ended'
    this.handlers.onEnd?.(eof)
    this.maybeFinished()
  }

  private onAcknowledgement(m: StreamMessage, now: number): void {
    const sb = this.sendBuffer
    // RTT sample from the id this message names.
    if (m.acknowledging !== 0) {
      const b = sb.blockById(m.acknowledging)
      if (b && !b.acked) {
        if (b.prevId === m.acknowledging) {
          // The transmission before a timeout arrived after all: the timeout was spurious (the
          // round trip grew past the RTO, nothing was lost). Undo its window cut (Eifel).
          if (this.congestion.undoTimeout()) {
            this.stats.spuriousTimeouts++
            sb.unmarkLost()
          }
        } else {
          this.rtt.sample(now - b.sentAt)
          // A repeat arrived, not the original: the timeout was real.
          if (b.transmissions > 1) this.congestion.timeoutConfirmed()
          else if (b.lost && this.congestion.undoTimeout()) {
            // Sent once, counted lost by the timeout, and now acknowledged by its id: it was on
            // its way all along (a stalled peer acknowledges its backlog naming the newest
            // message, which the shrunken window has not sent again yet). Spurious, too.
            this.stats.spuriousTimeouts++
            sb.unmarkLost()
          }
        }
        // A block without data has no range to be acknowledged by; its id is the proof.
        if (b.size === 0 && b.eof === 0) {
          sb.markAcked(b)
          this.acked(1, now)
        }
      }
    }
    const acked = sb.acknowledge(m.ranges)
    if (acked) this.acked(acked, now)
    if (sb.highestAckedTx) {
      const lost = sb.detectLoss(sb.highestAckedTx)
      if (lost) {
        this.stats.fastRetransmits += lost
        this.congestion.onLoss(now)
      }
    }
    this.maybeFinished()
    if (this.sendState === 'open' && sb.drained()) this.handlers.onDrain?.()
  }

  private acked(blocks: number, now: number): void {
    this.lastProgressAt = now
    for (let i = 0; i < blocks; i++) this.congestion.onAcked()
  }

  private maybeFinished(): void {
    if (this.sendState !== 'ending' || !this.sendBuffer.eofAcked) return
    this.sendState = 'ended'
    this.handlers.onFinish?.()
  }

  // ---------------------------------------------------------------------------------------------
  // Sending: the pump, acknowledgements

  /**
   * One flush per turn of the event loop, after its I/O: every write and every block received
   * in the turn (each datagram is its own callback) is then cut into full blocks together, and
   * the acknowledgement rides on the first of them; a pure acknowledgement goes only when no
   * data does. A microtask per write would send a block, and a datagram, per frame written.
   */
  private schedulePump(): void {
    if (this.pumpScheduled || this.destroyed || !this.started) return
    this.pumpScheduled = true
    this.clock.setImmediate(this.flush)
  }

  private readonly flush = (): void => {
    this.pumpScheduled = false
    this.pump()
  }

  private pump(): void {
    if (this.destroyed || !this.started) return
    const sb = this.sendBuffer
    const now = this.clock.now()
    let sent = 0
    while (sent < MAX_BURST_BLOCKS) {
      if (!this.congestion.allows(sb.inFlight)) break
      const b = sb.lostCount > 0 ? sb.firstLost() : this.newBlock()
      if (!b) break
      this.transmitBlock(b, now)
      sent++
    }
    if (sent === MAX_BURST_BLOCKS && !this.destroyed) {
      // More may go: yield to I/O first (acknowledgements, the peer's data).
      this.schedulePump()
    }
    if (this.ackPending && !this.destroyed) {
      // No data went: wait one more turn before a pure acknowledgement, for the answer the
      // application may write after this turn's I/O (e.g. behind a storage commit).
      if (this.ackWaited) this.sendAck()
      else {
        this.ackWaited = true
        this.schedulePump()
      }
    }
    this.armTimer(now)
  }

  private newBlock(): Block | undefined {
    const wasEmpty = this.sendBuffer.blocks.length === 0
    const b = this.sendBuffer.cut(Math.min(this.maxBlock, maxBlockBytesFor(this.maxMessage)))
    // The give-up clock runs while something waits for an acknowledgement.
    if (b && wasEmpty) this.lastProgressAt = this.clock.now()
    return b
  }

  private transmitBlock(b: Block, now: number): void {
    if (b.transmissions > 0) this.stats.retransmissions++
    // After a timeout the earlier transmission may still be acknowledged: keep its id.
    const id = this.sendBuffer.transmitted(b, now, this.congestion.undoPossible)
    this.stats.blocksSent++
    this.ackPending = false
    this.ackWaited = false
    this.send(id, this.receiveBuffer.takeAckId(), b.eof, b.pos, b.parts ?? b.data, b.size)
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
    this.ackWaited = false
    this.stats.acksSent++
    this.send(0, this.receiveBuffer.takeAckId(), 0, 0, EMPTY, 0)
  }

  /**
   * Encodes one message (our ranges in it) and hands it to the transport: its data is one buffer,
   * or the parts of a block that spans writes, `dataBytes` in all.
   */
  private send(id: number, acknowledging: number, eof: EndOfStream, offset: number, data: Buffer | readonly Buffer[], dataBytes: number): void {
    // The head goes into one scratch buffer, reused: the transport copies it into its packet.
    const headBytes = encodeMessageHead(HEAD, id, acknowledging, this.ackRanges(), eof, offset, dataBytes, this.maxMessage)
    this.stats.messagesOut++
    if (this.handlers.transmitParts) return this.handlers.transmitParts(HEAD, headBytes, data, dataBytes)
    const message = Buffer.allocUnsafe(headBytes + dataBytes)
    HEAD.copy(message, 0, 0, headBytes)
    if (Buffer.isBuffer(data)) message.set(data, headBytes)
    else Buffer.concat(data as Buffer[]).copy(message, headBytes)
    this.handlers.transmit(message)
  }

  // ---------------------------------------------------------------------------------------------
  // Timers: one timer for retransmission and give-up.

  private armTimer(now: number): void {
    if (this.destroyed) return
    // Nothing in flight: the timer is left to expire (a no-op then, not re-armed). Clearing it
    // here and arming a new one with the next block made a setTimeout per round trip.
    if (this.sendBuffer.inFlight === 0) return
    this.timer.arm(Math.min(this.sendBuffer.oldestSentAt() + this.rtt.rto, this.lastProgressAt + this.giveUpMs), now)
  }

  /**
   * The timer fired: decide after this turn's I/O. Timers run before the poll for I/O, so after
   * a stall of our own process (descheduled on a busy machine, a long task) the peer's
   * acknowledgements may sit unread in the socket: judged now, they would make a timeout that
   * sends the whole window again.
   */
  private expiredTimer(): void {
    if (this.destroyed || this.expiryPending) return
    this.expiryPending = true
    this.clock.setImmediate(this.checkExpiry)
  }

  private readonly checkExpiry = (): void => {
    this.expiryPending = false
    if (this.destroyed) return
    const now = this.clock.now()
    if (this.sendBuffer.blocks.length && now - this.lastProgressAt >= this.giveUpMs) {
      return this.fail(new ProtocolError('ERR_TIMEOUT', `no acknowledgement for ${Math.round(now - this.lastProgressAt)} ms; giving up`))
    }
    if (this.sendBuffer.hasExpired(now, this.rtt.rto)) {
      this.congestion.onTimeout(now)
      this.sendBuffer.markAllLost()
      this.stats.timeouts++
      this.rtt.backOff()
    }
    this.pump()
    this.armTimer(now)
  }

  private fail(err: MMError): void {
    const onError = this.handlers.onError
    this.destroy()
    onError?.(err)
  }
}

const EMPTY = Buffer.alloc(0)
/** Scratch for message heads (header and padding); used synchronously only, so one serves all. */
const HEAD = Buffer.alloc(MAX_MESSAGE_BYTES)
