// 4-byte big-endian length prefix framing, for cases whose transport is a byte stream (plain TCP,
// libp2p streams). Decoding hands out subarrays of the received chunks, copying only a message
// that spans chunks.

export const MAX_FRAME = 16 << 20

export function frameHeader(len: number): Buffer {
  const h = Buffer.allocUnsafe(4)
  h.writeUInt32BE(len, 0)
  return h
}

export class LengthPrefixDecoder {
  private parts: Buffer[] = []
  private buffered = 0
  private need = 0 // bytes (header included) of the frame being assembled; 0 = not known yet

  constructor(
    private readonly onMessage: (msg: Buffer) => void,
    private readonly max = MAX_FRAME,
  ) {}

  push(chunk: Buffer): void {
    if (this.buffered === 0) {
      this.parse(chunk)
      return
    }
    this.parts.push(chunk)
    this.buffered += chunk.byteLength
    if (this.need === 0) {
      if (this.buffered < 4) return
      const first = this.parts[0]!
      const head = first.byteLength >= 4 ? first : Buffer.concat(this.parts, this.buffered)
      this.need = 4 + this.checkLength(head.readUInt32BE(0))
    }
    if (this.buffered < this.need) return
    const all = Buffer.concat(this.parts, this.buffered)
    this.parts = []
    this.buffered = 0
    this.need = 0
    this.parse(all)
  }

  private parse(chunk: Buffer): void {
    let off = 0
    const end = chunk.byteLength
    while (end - off >= 4) {
      const n = this.checkLength(chunk.readUInt32BE(off))
      if (end - off - 4 < n) {
        this.need = 4 + n
        break
      }
      this.onMessage(chunk.subarray(off + 4, off + 4 + n))
      off += 4 + n
    }
    if (off < end) {
      this.parts.push(chunk.subarray(off))
      this.buffered = end - off
    }
  }

  private checkLength(n: number): number {
    if (n > this.max) throw new Error(`frame of ${n} bytes exceeds the ${this.max}-byte limit`)
    return n
  }
}

/** A Uint8Array (or Buffer) as a Buffer over the same memory. */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength)
}
