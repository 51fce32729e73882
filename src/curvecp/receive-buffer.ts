/**
 * The receiver's side of a CurveCP message stream (curvecp.org/messages.html): in-order bytes go
 * to the application at once; blocks ahead of them are held (bounded by `receiveWindowBytes` and
 * a block count) until the gap fills; what we hold is reported as acknowledgement ranges: range 1
 * from position 0, then up to five more of at most 65535 bytes each, with range boundaries on
 * block boundaries (the spec's rule). Once the receiver acknowledges a range it takes
 * responsibility for those bytes.
 *
 * The peer's EOF (success or failure) has position N, one past its last byte: a success ends the
 * stream once every byte before it arrived, and range 1 then ends at N + 1 (the reference's way
 * to acknowledge the EOF); a failure ends it at once (the missing bytes will not come).
 *
 * Hostile input is dropped and counted in `drops`, never thrown. The sink may close this buffer
 * from inside onData/onEnd; nothing runs after that.
 */
import {
  EOF_FAILURE,
  EOF_SUCCESS,
  MAX_ACK_RANGES,
  MAX_FIRST_GAP,
  MAX_SHORT_RANGE,
  type AckRange,
  type EndOfStream,
  type StreamMessage
} from './message-layer.js'

// ---- Implementation constants (options override) ----
/** Bytes past the delivered ones the receiver keeps (out-of-order blocks). */
export const RECEIVE_WINDOW_BYTES = 131_072
/** Out-of-order blocks kept at most (bounds memory when blocks are tiny). */
export const MAX_OUT_OF_ORDER_BLOCKS = 4096

/** Where the bytes and the end go. */
export interface ReceiveSink {
  /** In-order bytes (never empty). */
  onData(data: Buffer): void
  /** Every byte before the peer's EOF was delivered (success), or the peer failed. */
  onEnd(eof: typeof EOF_SUCCESS | typeof EOF_FAILURE): void
}

/** Counters of dropped blocks (shared with the stream's stats). */
export interface ReceiveDrops {
  beyondWindow: number
  afterEof: number
  outOfOrderFull: number
  duplicate: number
}

export interface ReceiveBufferOptions {
  receiveWindowBytes?: number
  maxOutOfOrderBlocks?: number
}

/** A block received ahead of the in-order position. */
interface Held {
  start: number
  end: number
  data: Buffer
}

export class ReceiveBuffer {
  /** Bytes delivered in order: the stream position of the next byte expected. */
  received = 0
  /** The peer's EOF has been reached (or it failed): nothing more is delivered. */
  ended = false
  /** Blocks ahead of `received`, sorted by start, none inside another. */
  private held: Held[] = []
  private heldBytes = 0
  /** The peer's EOF flag (0: not seen yet) and its position. */
  private peerEof: EndOfStream = 0
  private peerTotal = 0
  private closed = false
  /** Id of the newest message to acknowledge by id (0: reported already). */
  private ackId = 0
  /** Bumped whenever what we hold changes; the encoded ranges are cached per version. */
  private version = 0
  private rangesVersion = -1
  private rangesCache: AckRange[] | undefined
  private readonly sink: ReceiveSink
  private readonly drops: ReceiveDrops
  private readonly receiveWindow: number
  private readonly maxHeld: number

  constructor(sink: ReceiveSink, drops: ReceiveDrops, options: ReceiveBufferOptions = {}) {
    this.sink = sink
    this.drops = drops
    this.receiveWindow = options.receiveWindowBytes ?? RECEIVE_WINDOW_BYTES
    this.maxHeld = options.maxOutOfOrderBlocks ?? MAX_OUT_OF_ORDER_BLOCKS
  }

  /** Out-of-order blocks held now (for tests and stats). */
  get heldBlocks(): number {
    return this.held.length
  }

  /** Drops what is held; nothing is delivered after this (the stream was destroyed). */
  close(): void {
    this.closed = true
    this.held = []
    this.heldBytes = 0
  }

  /**
   * Takes the data and EOF of a message. False when the block was dropped and must not be
   * acknowledged (beyond the window, or no room to hold it); true otherwise, duplicates included.
   */
  take(m: StreamMessage): boolean {
    const d = m.data.length
    const start = m.offset
    const end = start + d
    if (d === 0 && m.eof === 0) return true
    if (end > this.received + this.receiveWindow) {
      this.drops.beyondWindow++
      return false
    }
    if (this.peerEof !== 0 && end > this.peerTotal) {
      this.drops.afterEof++
      return true
    }
    if (m.eof !== 0) {
      if (this.peerEof !== 0 && end !== this.peerTotal) {
        this.drops.afterEof++
        return true
      }
      if (end < this.received || this.heldEnd() > end) {
        // An EOF before bytes we already hold: not a stream we can deliver.
        this.drops.afterEof++
        return true
      }
      this.peerEof = m.eof
      this.peerTotal = end
    }
    if (end > this.received) {
      const data = Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data)
      if (start <= this.received) {
        // A block at the in-order position (the usual case) goes as it is: no view per block.
        this.deliver(start === this.received ? data : data.subarray(this.received - start), end)
        if (this.closed) return true
        this.drainHeld()
        if (this.closed) return true
      } else if (!this.hold(start, end, Buffer.from(data))) {
        return false
      }
    } else if (d > 0) {
      this.drops.duplicate++
    }
    this.checkPeerEnd()
    return true
  }

  /** The message with this id is to be acknowledged (by id, in the next message we send). */
  acknowledgeId(id: number): void {
    this.ackId = id
  }

  /** The id for the next message's "acknowledging" field, once (0: none). */
  takeAckId(): number {
    // Name each received id once: the reference measures its RTT from it, and a second mention
    // after the block was acknowledged would read as a huge round trip.
    const id = this.ackId
    this.ackId = 0
    return id
  }

  /** The ranges we hold: [0, received) (+1 for a complete EOF), then held blocks, merged. */
  ackRanges(): AckRange[] {
    if (this.rangesCache && this.rangesVersion === this.version) return this.rangesCache
    this.rangesCache = this.computeAckRanges()
    this.rangesVersion = this.version
    return this.rangesCache
  }

  private computeAckRanges(): AckRange[] {
    const first = this.received + (this.ended && this.received === this.peerTotal ? 1 : 0)
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

  private heldEnd(): number {
    const last = this.held[this.held.length - 1]
    return last ? last.end : 0
  }

  private deliver(data: Buffer, end: number): void {
    this.received = end
    this.version++
    if (data.length) this.sink.onData(data)
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
      this.drops.duplicate++
      return true
    }
    if (this.held.length >= this.maxHeld || this.heldBytes + data.length > this.receiveWindow) {
      this.drops.outOfOrderFull++
      return false
    }
    this.held.splice(lo, 0, { start, end, data })
    this.heldBytes += data.length
    this.version++
    return true
  }

  /** Delivers held blocks that the in-order position has reached. */
  private drainHeld(): void {
    let n = 0
    while (n < this.held.length) {
      const b = this.held[n] as Held
      if (b.start > this.received) break
      n++
      this.heldBytes -= b.data.length
      if (b.end > this.received) {
        this.deliver(b.data.subarray(this.received - b.start), b.end)
        if (this.closed) return
      }
    }
    if (n) this.held.splice(0, n)
  }

  private checkPeerEnd(): void {
    if (this.ended || this.closed || this.peerEof === 0) return
    // A success EOF ends the stream once every byte before it is here; a failure ends it at
    // once (the bytes missing before it will not come: the peer gave up).
    if (this.received !== this.peerTotal && this.peerEof !== EOF_FAILURE) return
    this.ended = true
    this.version++
    this.held = []
    this.heldBytes = 0
    this.sink.onEnd(this.peerEof === EOF_FAILURE ? EOF_FAILURE : EOF_SUCCESS)
  }
}
