/** CurveCP nonces (curvecp.org/nonces.html): 24 bytes = prefix || counter or random bytes. */
import { LONG_NONCE_BYTES, SHORT_NONCE_BYTES } from './constants.js'

/** prefix (16 bytes) || counter as 8 bytes little-endian. Counters stay below 2^53 here. */
export function shortTermNonce(prefix: Buffer, counter: number, out: Buffer = Buffer.allocUnsafe(24)): Buffer {
  prefix.copy(out, 0, 0, 16)
  out.writeUInt32LE(counter >>> 0, 16)
  out.writeUInt32LE(Math.floor(counter / 0x1_0000_0000), 20)
  return out
}

/** prefix (8 bytes) || 16 bytes carried in the packet. */
export function longTermNonce(prefix: Buffer, tail: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(24)
  prefix.copy(out, 0, 0, 8)
  out.set(tail.subarray(0, LONG_NONCE_BYTES), 8)
  return out
}

/** Reads the 8-byte little-endian counter of a packet. Values above 2^53 read as Infinity. */
export function readCounter(bytes: Uint8Array, offset: number): number {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset + offset, SHORT_NONCE_BYTES)
  const lo = view.readUInt32LE(0)
  const hi = view.readUInt32LE(4)
  if (hi >= 0x20_0000) return Infinity
  return hi * 0x1_0000_0000 + lo
}
