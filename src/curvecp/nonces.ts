/**
 * CurveCP nonces (curvecp.org/nonces.html): 24 bytes = prefix || counter or random bytes.
 *
 * The 8-byte counter is a full unsigned 64-bit value: DJB's `curvecpserver` starts a freed client
 * slot at a random 64-bit nonce, so counters at and above 2^53 occur in practice. A JavaScript
 * number cannot hold them exactly, so a counter is kept as two 32-bit halves ({@link Counter64}):
 * reading, comparing and incrementing stay plain integer operations (no BigInt allocation on the
 * packet path).
 */
import { LONG_NONCE_BYTES } from './constants.js'

/** A 64-bit nonce counter as two unsigned 32-bit halves. */
export interface Counter64 {
  hi: number
  lo: number
}

/** The largest counter, 2^64 - 1: the last one a session may use. */
export const COUNTER_MAX: Readonly<Counter64> = Object.freeze({ hi: 0xffff_ffff, lo: 0xffff_ffff })

/** A counter from a non-negative safe integer (below 2^53) or a bigint below 2^64. */
export function counter64(value: number | bigint): Counter64 {
  if (typeof value === 'bigint') {
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError('a nonce counter is 0..2^64-1')
    return { hi: Number(value >> 32n), lo: Number(value & 0xffff_ffffn) }
  }
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError('a nonce counter is a non-negative safe integer or a bigint')
  return { hi: Math.floor(value / 0x1_0000_0000), lo: value >>> 0 }
}

/** The counter as a bigint (for logs and tests; not used on the packet path). */
export function counterToBigInt(c: Counter64): bigint {
  return (BigInt(c.hi) << 32n) | BigInt(c.lo)
}

/** -1, 0 or 1 as `a` is below, equal to or above `b`. */
export function compareCounters(a: Counter64, b: Counter64): number {
  if (a.hi !== b.hi) return a.hi < b.hi ? -1 : 1
  if (a.lo !== b.lo) return a.lo < b.lo ? -1 : 1
  return 0
}

/**
 * Writes prefix (16 bytes) || counter (8 bytes little-endian) into `out`.
 */
export function shortTermNonce(prefix: Buffer, counter: number | Counter64, out: Buffer = Buffer.allocUnsafe(24)): Buffer {
  prefix.copy(out, 0, 0, 16)
  if (typeof counter === 'number') {
    out.writeUInt32LE(counter >>> 0, 16)
    out.writeUInt32LE(Math.floor(counter / 0x1_0000_0000) >>> 0, 20)
  } else {
    out.writeUInt32LE(counter.lo, 16)
    out.writeUInt32LE(counter.hi, 20)
  }
  return out
}

/** prefix (8 bytes) || 16 bytes carried in the packet. */
export function longTermNonce(prefix: Buffer, tail: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(24)
  prefix.copy(out, 0, 0, 8)
  out.set(tail.subarray(0, LONG_NONCE_BYTES), 8)
  return out
}

/** Reads the 8-byte little-endian counter at `offset` of `bytes`, all 64 bits of it. */
export function readCounter(bytes: Buffer, offset: number, out: Counter64 = { hi: 0, lo: 0 }): Counter64 {
  out.lo = bytes.readUInt32LE(offset)
  out.hi = bytes.readUInt32LE(offset + 4)
  return out
}
