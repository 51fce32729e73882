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
    return this.concatFirst(LENGTH_PREFIX_BYTES).readUInt32BE(0)
  }

  /** Merges the head chunks so that the first holds at least n bytes. */
  private concatFirst(n: number): Buffer {
    let total = 0
    let i = 0
    while (total < n) total += (this.chunks[i++] as Buffer).length
    const merged = Buffer.concat(this.chunks.slice(0, i))
    this.chunks.splice(0, i, merged)
    return merged
  }

  private consume(n: number): Buffer {
    let first = this.chunks[0] as Buffer
    if (first.length < n) first = this.concatFirst(n)
    const out = first.subarray(0, n)
    if (first.length === n) this.chunks.shift()
    else this.chunks[0] = first.subarray(n)
    this.buffered -= n
    return out
  }
}
