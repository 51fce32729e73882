/**
 * A message id's 8-byte stream prefix as hex, the last one kept: a sender's prefix is the same
 * for every message of its stream, so the text is made once per stream, not per message.
 */
export class IdPrefixHex {
  private hi = -1
  private lo = -1
  private hex = ''

  /** The hex of `id`'s first 8 bytes. */
  of(id: Buffer): string {
    const hi = id.readUInt32BE(0)
    const lo = id.readUInt32BE(4)
    if (hi !== this.hi || lo !== this.lo) {
      this.hi = hi
      this.lo = lo
      this.hex = id.toString('hex', 0, 8)
    }
    return this.hex
  }
}
