/**
 * The sender's side of a CurveCP message stream (curvecp.org/messages.html): bytes written and
 * not yet cut into blocks, the blocks sent and not yet acknowledged, which of them count as
 * lost, and the EOF to send. A block is at most 1024 bytes at one stream position; each
 * transmission of it carries a fresh message id. Once a range acknowledges a block the sender
 * "discards those bytes and never sends them again" (the spec), so acknowledged blocks at the
 * front are released and `sendAcked` moves on.
 *
 * Flow control: the message format has no window field, so like the reference we never cut a
 * block past `sendAcked + sendWindowBytes` (the reference receiver drops anything beyond 128 KiB
 * past what it has delivered).
 *
 * Pure bookkeeping: times come in as arguments; what to send, and when, is the stream's choice.
 */
import { MMError } from '../errors.js'
import type { AckRange, EndOfStream } from './message-layer.js'

// ---- Implementation constants (options override all but the last) ----
/** Bytes past the first unacknowledged byte the sender may have sent (the reference receiver's buffer). */
export const SEND_WINDOW_BYTES = 131_072
/** Blocks tracked by the sender at most (in flight or waiting to be sent again). */
export const MAX_BLOCKS_IN_FLIGHT = 1024
/** write() says false above this many bytes waiting (queued or unacknowledged). */
export const HIGH_WATER_BYTES = 1024 * 1024
/** write() throws above this many bytes waiting: the caller ignored back-pressure. */
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024
/** Blocks acknowledged after a later-sent block before it counts as lost. */
export const REORDER_THRESHOLD = 3

export interface SendBufferOptions {
  sendWindowBytes?: number
  maxBlocksInFlight?: number
  highWaterBytes?: number
  maxBufferedBytes?: number
}

/** A block of our stream: sent, waiting for its acknowledgement. */
export interface Block {
  pos: number
  /**
   * The block's bytes: one view into what was written, or, when the block spans several writes,
   * EMPTY and the views are in `parts` (the transport copies them into its packet: no copy here).
   */
  data: Buffer
  parts: Buffer[] | null
  /** Data bytes of the block. */
  size: number
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

const EMPTY = Buffer.alloc(0)

export class SendBuffer {
  /** Stream position of the first byte not yet acknowledged and released. */
  sendAcked = 0
  /** Stream position of the next byte to cut into a block. */
  sendNext = 0
  /** Bytes written, not yet cut into blocks. */
  queueBytes = 0
  /** Blocks in stream order, from the first not yet acknowledged. */
  blocks: Block[] = []
  /** Blocks sent and neither acknowledged nor counted lost. */
  inFlight = 0
  /** Blocks counted lost, waiting to be sent again (an upper bound: see firstLost). */
  lostCount = 0
  /** The EOF to send once the queue is empty (0: none wanted yet). */
  eofWanted: EndOfStream = 0
  /** The EOF has been cut into a block. */
  eofBlocked = false
  /** Send a block without data even with nothing queued (the reference's "ping"). */
  wantPing = false
  /** Set by acknowledge(): latest transmission order of a block acknowledged on its first transmission (0: none). */
  highestAckedTx = 0

  private queue: Buffer[] = []
  private queueHead = 0
  private readonly byId = new Map<number, Block>()
  private nextId = 1
  private txSeq = 0
  /** write() said false: drained() says true once below the high-water mark. */
  private needDrain = false
  private readonly sendWindow: number
  readonly maxBlocks: number
  private readonly highWater: number
  private readonly maxBuffered: number

  constructor(options: SendBufferOptions = {}) {
    this.sendWindow = options.sendWindowBytes ?? SEND_WINDOW_BYTES
    this.maxBlocks = options.maxBlocksInFlight ?? MAX_BLOCKS_IN_FLIGHT
    this.highWater = options.highWaterBytes ?? HIGH_WATER_BYTES
    this.maxBuffered = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES
  }

  /** Bytes written and not yet acknowledged by the peer. */
  get bufferedBytes(): number {
    return this.queueBytes + (this.sendNext - this.sendAcked)
  }

  /** Everything written, and the EOF if one was cut, has been acknowledged. */
  get empty(): boolean {
    return this.queueBytes === 0 && this.blocks.length === 0
  }

  /** The EOF has been cut into a block and every block is acknowledged. */
  get eofAcked(): boolean {
    return this.eofBlocked && this.empty
  }

  /**
   * Queues bytes (copied, unless `owned`: the caller hands the buffer over and never changes it;
   * blocks are then views into it until acknowledged). False when the caller should wait for
   * {@link drained}.
   * @throws MMError `ERR_QUEUE_FULL` when more than maxBufferedBytes would wait.
   */
  write(data: Uint8Array, owned = false): boolean {
    if (data.length === 0) return this.bufferedBytes < this.highWater
    if (this.bufferedBytes + data.length > this.maxBuffered) {
      throw new MMError('ERR_QUEUE_FULL', `stream buffer full: ${this.bufferedBytes} bytes wait (at most ${this.maxBuffered}); wait for drain`)
    }
    this.queue.push(owned && Buffer.isBuffer(data) ? data : Buffer.from(data))
    this.queueBytes += data.length
    const ok = this.bufferedBytes < this.highWater
    if (!ok) this.needDrain = true
    return ok
  }

  /** True once after write() said false, when the bytes waiting fell below the high-water mark. */
  drained(): boolean {
    if (!this.needDrain || this.bufferedBytes >= this.highWater) return false
    this.needDrain = false
    return true
  }

  /** Drops bytes written and not yet cut into blocks. */
  dropQueued(): void {
    this.queue = []
    this.queueHead = 0
    this.queueBytes = 0
  }

  /** Drops everything (the stream is destroyed). */
  clear(): void {
    this.dropQueued()
    this.blocks = []
    this.byId.clear()
  }

  /** A fresh message id: 1..2^32-1, wrapping (0 means "no id" on the wire). */
  newId(): number {
    const id = this.nextId
    this.nextId = this.nextId === 0xffff_ffff ? 1 : this.nextId + 1
    return id
  }

  /** The block whose latest (or, after a timeout, previous) transmission had this id. */
  blockById(id: number): Block | undefined {
    return this.byId.get(id)
  }

  /**
   * Cuts the next block of at most `maxBytes` from the queue, if the send window and the block
   * bound allow; an empty block when only the EOF (or a ping) remains. Undefined: nothing to cut.
   */
  cut(maxBytes: number): Block | undefined {
    if (this.blocks.length >= this.maxBlocks) return undefined
    const room = Math.min(maxBytes, this.sendAcked + this.sendWindow - this.sendNext)
    let data: Buffer = EMPTY
    let parts: Buffer[] | null = null
    let size = 0
    if (this.queueBytes > 0) {
      if (room <= 0) return undefined
      size = Math.min(room, this.queueBytes)
      const first = this.queue[this.queueHead] as Buffer
      if (first.length >= size) data = this.takeOne(first, size)
      else parts = this.takeParts(size)
    } else if (!((this.eofWanted !== 0 && !this.eofBlocked) || this.wantPing)) {
      return undefined
    }
    this.wantPing = false
    let eof: EndOfStream = 0
    if (this.queueBytes === 0 && this.eofWanted !== 0 && !this.eofBlocked) {
      eof = this.eofWanted
      this.eofBlocked = true
    }
    const b: Block = { pos: this.sendNext, data, parts, size, eof, id: 0, prevId: 0, sentAt: 0, txSeq: 0, transmissions: 0, acked: false, lost: false }
    this.sendNext += size
    this.blocks.push(b)
    return b
  }

  /** The first block counted lost, oldest first. */
  firstLost(): Block | undefined {
    for (const b of this.blocks) if (b.lost) return b
    this.lostCount = 0
    return undefined
  }

  /**
   * Records a transmission of `b` now and returns its new id. `keepPrevId`: a timeout may prove
   * spurious, so an acknowledgement of the first transmission must still find the block.
   */
  transmitted(b: Block, now: number, keepPrevId: boolean): number {
    if (b.prevId) this.byId.delete(b.prevId)
    b.prevId = 0
    if (b.id) {
      if (keepPrevId && b.transmissions === 1) b.prevId = b.id
      else this.byId.delete(b.id)
    }
    const id = this.newId()
    b.id = id
    this.byId.set(id, b)
    if (b.lost) {
      b.lost = false
      this.lostCount--
    }
    b.transmissions++
    b.sentAt = now
    b.txSeq = ++this.txSeq
    this.inFlight++
    return id
  }

  /** Marks one block acknowledged (it leaves the blocks in flight or the lost ones). */
  markAcked(b: Block): void {
    b.acked = true
    if (b.id) this.byId.delete(b.id)
    if (b.prevId) this.byId.delete(b.prevId)
    if (b.lost) this.lostCount--
    else if (b.transmissions > 0) this.inFlight--
    b.lost = false
  }

  /**
   * Marks acknowledged every block the ranges cover (a block fully inside [start, end); an EOF
   * needs one position more), then releases acknowledged blocks at the front. Returns how many
   * blocks became acknowledged; sets `highestAckedTx` for {@link detectLoss}.
   */
  acknowledge(ranges: readonly AckRange[]): number {
    let acked = 0
    let highestTx = 0
    for (const r of ranges) {
      if (r.end <= r.start) continue
      for (const b of this.blocks) {
        if (b.pos >= r.end) break
        if (b.acked || b.pos < r.start) continue
        const stop = b.pos + b.size + (b.eof !== 0 ? 1 : 0)
        if (stop > r.end) continue
        // Only a block sent once tells which transmission arrived: the RACK rule counts those.
        if (b.transmissions === 1 && b.txSeq > highestTx) highestTx = b.txSeq
        this.markAcked(b)
        acked++
      }
    }
    this.release()
    this.highestAckedTx = highestTx
    return acked
  }

  /** Drops acknowledged blocks at the front; advances sendAcked. */
  private release(): void {
    let n = 0
    while (n < this.blocks.length) {
      const b = this.blocks[n] as Block
      if (!b.acked) break
      this.sendAcked = b.pos + b.size
      n++
    }
    if (n) this.blocks.splice(0, n)
  }

  /**
   * Blocks sent REORDER_THRESHOLD transmissions or more before `highestTx` (a transmission that
   * was acknowledged) are lost. Returns how many were newly counted lost.
   */
  detectLoss(highestTx: number): number {
    let lost = 0
    for (const b of this.blocks) {
      if (b.acked || b.lost || b.transmissions === 0) continue
      if (b.txSeq + REORDER_THRESHOLD <= highestTx) {
        this.markLost(b)
        lost++
      }
    }
    return lost
  }

  /** Whether a block in flight was sent `rto` ms or more before `now`. */
  hasExpired(now: number, rto: number): boolean {
    for (const b of this.blocks) {
      if (!b.acked && !b.lost && b.transmissions > 0 && b.sentAt + rto <= now) return true
    }
    return false
  }

  /** Send time of the oldest block in flight (Infinity: none). */
  oldestSentAt(): number {
    let earliest = Infinity
    for (const b of this.blocks) {
      if (!b.acked && !b.lost && b.transmissions > 0 && b.sentAt < earliest) earliest = b.sentAt
    }
    return earliest
  }

  /**
   * A timeout: the window's worth in flight is gone (or stuck behind what is). All of it counts
   * as lost and goes again as the shrunken window allows, oldest first.
   */
  markAllLost(): void {
    for (const b of this.blocks) if (!b.acked && !b.lost && b.transmissions > 0) this.markLost(b)
  }

  /** A timeout proved spurious: blocks it counted lost are most likely in flight; stop resending them. */
  unmarkLost(): void {
    for (const b of this.blocks) {
      if (b.lost && b.transmissions > 0) {
        b.lost = false
        this.lostCount--
        this.inFlight++
      }
    }
  }

  private markLost(b: Block): void {
    b.lost = true
    this.inFlight--
    this.lostCount++
  }

  /** The first `n` bytes of the queue, all in its first buffer `first`. */
  private takeOne(first: Buffer, n: number): Buffer {
    let out = first
    if (first.length === n) this.queueHead++
    else {
      out = first.subarray(0, n)
      this.queue[this.queueHead] = first.subarray(n)
    }
    this.taken(n)
    return out
  }

  /** The first `n` bytes of the queue, which span several of its buffers: views, no copy. */
  private takeParts(n: number): Buffer[] {
    const parts: Buffer[] = []
    let at = 0
    while (at < n) {
      const c = this.queue[this.queueHead] as Buffer
      const k = Math.min(c.length, n - at)
      at += k
      if (k === c.length) {
        parts.push(c)
        this.queueHead++
      } else {
        parts.push(c.subarray(0, k))
        this.queue[this.queueHead] = c.subarray(k)
      }
    }
    this.taken(n)
    return parts
  }

  private taken(n: number): void {
    this.queueBytes -= n
    if (this.queueHead > 64 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead)
      this.queueHead = 0
    }
  }
}

/** A block's bytes as one buffer (a copy when it has parts): for tests and the unsplit transmit path. */
export function blockBytes(b: Pick<Block, 'data' | 'parts'>): Buffer {
  return b.parts ? Buffer.concat(b.parts) : b.data
}
