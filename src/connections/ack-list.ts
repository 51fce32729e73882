/**
 * Message ids owed an ACK on one channel (peer.pendingAcks): 16 bytes each, back to back in one
 * buffer, copied in as they come. No object per id: a peer that does not read can have
 * limits.maxHeldAckIds of them held per channel, and a Buffer per id cost ~100 bytes of heap
 * each (and, as a view, could pin the packet it came in).
 */
import { FRAME_ACK, FRAME_HEADER_BYTES, MESSAGE_ID_BYTES } from './frames.js'

/** Emptied lists kept for reuse (a list per batch written otherwise: per message in a ping-pong). */
const SPARE_LISTS = 16
/** A list's buffer is kept for reuse up to this size (a flood's big one is left to the collector). */
const SPARE_LIST_BYTES = 256 * MESSAGE_ID_BYTES
const spare: AckList[] = []

export class AckList {
  /** An empty list: a spare one if any (see {@link give}), else a new one. */
  static take(): AckList {
    return spare.pop() ?? new AckList()
  }

  /** `list` is done with (its frames made): emptied and kept for a later {@link take}. */
  static give(list: AckList): void {
    if (spare.length >= SPARE_LISTS || list.bytes.length > SPARE_LIST_BYTES) return
    list.length = 0
    spare.push(list)
  }

  private bytes: Buffer = Buffer.allocUnsafe(4 * MESSAGE_ID_BYTES)
  /** Ids held. */
  length = 0

  /** Copies the id at `start` of `from` (16 bytes). */
  push(from: Uint8Array, start = 0): void {
    const at = this.room(1)
    const bytes = this.bytes
    // 16 bytes: a loop the JIT compiles beats a call into Buffer.copy's binding.
    for (let i = 0; i < MESSAGE_ID_BYTES; i++) bytes[at + i] = from[start + i] as number
    this.length++
  }

  /** Copies the `count` ids at `start` of `from`, back to back. */
  pushMany(from: Uint8Array, start: number, count: number): void {
    const at = this.room(count)
    this.bytes.set(from.subarray(start, start + count * MESSAGE_ID_BYTES), at)
    this.length += count
  }

  /** Makes room for `count` more ids; returns the offset of the first. */
  private room(count: number): number {
    const at = this.length * MESSAGE_ID_BYTES
    const need = at + count * MESSAGE_ID_BYTES
    if (need > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.bytes.length * 2))
      this.bytes.copy(grown, 0, 0, at)
      this.bytes = grown
    }
    return at
  }

  /** The id at `i` (a view, valid until the next push). */
  at(i: number): Buffer {
    return this.bytes.subarray(i * MESSAGE_ID_BYTES, (i + 1) * MESSAGE_ID_BYTES)
  }

  /** The ACK frames carrying every id, at most `perFrame` ids each (frames.ts encodeAck's shape). */
  frames(perFrame: number): Buffer[] {
    const out: Buffer[] = []
    for (let i = 0; i < this.length; i += perFrame) {
      const n = Math.min(perFrame, this.length - i)
      const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n * MESSAGE_ID_BYTES)
      frame.writeUInt32BE(1 + n * MESSAGE_ID_BYTES, 0)
      frame[4] = FRAME_ACK
      this.bytes.copy(frame, FRAME_HEADER_BYTES, i * MESSAGE_ID_BYTES, (i + n) * MESSAGE_ID_BYTES)
      out.push(frame)
    }
    return out
  }

  *[Symbol.iterator](): IterableIterator<Buffer> {
    for (let i = 0; i < this.length; i++) yield this.at(i)
  }
}
