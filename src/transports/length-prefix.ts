/**
 * Length-prefixed packets on a byte stream: u32 big-endian length, then the packet. Pure: feed
 * chunks in, get whole packets out. A length over the bound is an error (the stream is then
 * closed by the caller): memory stays bounded whatever the peer sends.
 */
import { DecodeError } from '../errors.js'

export const LENGTH_PREFIX_BYTES = 4

export function encodeLengthPrefix(length: number): Buffer {
  const b = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES)
  b.writeUInt32BE(length, 0)
  return b
}

export class LengthPrefixDecoder {
  /** Largest packet accepted (raised once the peer is authenticated). */
  maxLength: number
  private chunks: Buffer[] = []
  private buffered = 0
  private need = -1

  constructor(maxLength: number) {
    this.maxLength = maxLength
  }

  /** Bytes held waiting for the rest of a packet. */
  get pending(): number {
    return this.buffered
  }

  /**
   * Adds a chunk; calls `onPacket` for each complete packet, in order.
   * @throws DecodeError for a zero or oversized length (the rest of the stream is unusable).
   */
  push(chunk: Buffer, onPacket: (packet: Buffer) => void): void {
    if (this.buffered === 0 && this.need < 0) {
      // Nothing held: the packets within this read are taken where they lie, one view each; only
      // a partial one at the end is held below.
      let at = 0
      const end = chunk.length
      while (end - at >= LENGTH_PREFIX_BYTES) {
        const len = chunk.readUInt32BE(at)
        if (len === 0 || len > this.maxLength) throw new DecodeError(`packet length ${len} is outside 1..${this.maxLength}`)
        if (end - at - LENGTH_PREFIX_BYTES < len) break
        at += LENGTH_PREFIX_BYTES + len
        onPacket(chunk.subarray(at - len, at))
      }
      if (at === end) return
      if (at !== 0) chunk = chunk.subarray(at)
    }
    this.chunks.push(chunk)
    this.buffered += chunk.length
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < LENGTH_PREFIX_BYTES) return
        const len = this.peekLength()
        if (len === 0 || len > this.maxLength) throw new DecodeError(`packet length ${len} is outside 1..${this.maxLength}`)
        this.consume(LENGTH_PREFIX_BYTES)
        this.need = len
      }
      if (this.buffered < this.need) return
      const packet = this.consume(this.need)
      this.need = -1
      onPacket(packet)
    }
  }

  private peekLength(): number {
    const first = this.chunks[0] as Buffer
    if (first.length >= LENGTH_PREFIX_BYTES) return first.readUInt32BE(0)
    // The prefix straddles chunks: read its bytes in place (merging would copy whole chunks).
    let value = 0
    let got = 0
    for (let i = 0; got < LENGTH_PREFIX_BYTES; i++) {
      const chunk = this.chunks[i] as Buffer
      for (let j = 0; j < chunk.length && got < LENGTH_PREFIX_BYTES; j++, got++) value = value * 256 + (chunk[j] as number)
    }
    return value
  }

  /**
   * The next n bytes. Within the first chunk: a view of it. Across chunks: copied into a buffer
   * of exactly n bytes, and only those (merging the whole chunks copied up to a read's worth
   * more, and the rest again with the next packet: about two copies of every byte of a bulk
   * stream, whose packets are a little longer than a socket read).
   */
  private consume(n: number): Buffer {
    const chunks = this.chunks
    const first = chunks[0] as Buffer
    this.buffered -= n
    if (first.length > n) {
      chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    if (first.length === n) {
      chunks.shift()
      return first
    }
    const out = Buffer.allocUnsafe(n)
    let at = 0
    let used = 0
    while (at < n) {
      const chunk = chunks[used] as Buffer
      const take = Math.min(chunk.length, n - at)
      chunk.copy(out, at, 0, take)
      at += take
      if (take === chunk.length) used++
      else chunks[used] = chunk.subarray(take)
    }
    chunks.splice(0, used)
    return out
  }
}
