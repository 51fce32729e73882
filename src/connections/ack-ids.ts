/**
 * The ids a channel owes ACKs for, kept as one buffer laid out as the ACK frame that will carry
 * them (frames.ts: length, type, then 16 bytes per id). An id costs its 16 bytes, not a Buffer
 * object of its own: a peer that floods tiny frames and does not read makes us hold up to
 * maxHeldAckIds of them (send.ts), and as objects those were ~120 bytes each, promoted to the old
 * generation and left there as garbage once its channel closed (6 such peers: tens of MiB).
 */
import { InvalidArgumentError } from '../errors.js'
import { FRAME_ACK, FRAME_HEADER_BYTES, MESSAGE_ID_BYTES } from './frames.js'

/** Room for this many ids at first (a turn's ACKs are often few); doubled as needed. */
const INITIAL_IDS = 64

export class AckIds {
  /** Header room, then the ids. */
  private bytes: Buffer
  private count = 0

  constructor(first?: Uint8Array) {
    this.bytes = Buffer.allocUnsafe(FRAME_HEADER_BYTES + INITIAL_IDS * MESSAGE_ID_BYTES)
    if (first) this.push(first)
  }

  /** Ids held. */
  get length(): number {
    return this.count
  }

  /** Bytes held (the buffer's capacity). */
  get byteLength(): number {
    return this.bytes.length
  }

  /** Adds a copy of a 16-byte id (the caller's buffer is not kept). */
  push(id: Uint8Array): void {
    const at = FRAME_HEADER_BYTES + this.count * MESSAGE_ID_BYTES
    if (at + MESSAGE_ID_BYTES > this.bytes.length) {
      const grown = Buffer.allocUnsafe(FRAME_HEADER_BYTES + this.count * 2 * MESSAGE_ID_BYTES)
      this.bytes.copy(grown, 0, 0, at)
      this.bytes = grown
    }
    // A shorter id would leave bytes of the unzeroed buffer on the wire.
    if (id.length !== MESSAGE_ID_BYTES) throw new InvalidArgumentError('a message id is 16 bytes')
    this.bytes.set(id, at)
    this.count++
  }

  /**
   * The ACK frames that carry every id held, at most `maxIds` each (at least one id held). With
   * one frame, it is a view of the buffer (no copy): the list must not be pushed to afterwards.
   */
  frames(maxIds: number): Buffer[] {
    if (this.count <= maxIds) return [header(this.bytes.subarray(0, FRAME_HEADER_BYTES + this.count * MESSAGE_ID_BYTES))]
    const out: Buffer[] = []
    for (let i = 0; i < this.count; i += maxIds) {
      const n = Math.min(maxIds, this.count - i)
      const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n * MESSAGE_ID_BYTES)
      const from = FRAME_HEADER_BYTES + i * MESSAGE_ID_BYTES
      this.bytes.copy(frame, FRAME_HEADER_BYTES, from, from + n * MESSAGE_ID_BYTES)
      out.push(header(frame))
    }
    return out
  }
}

/** Writes the ACK frame header into the first bytes of `frame` (the ids follow it). */
function header(frame: Buffer): Buffer {
  frame.writeUInt32BE(frame.length - 4, 0)
  frame[4] = FRAME_ACK
  return frame
}
