/**
 * The CurveCP message format (curvecp.org/messages.html), as DJB's `curvecpmessage` writes it:
 * the plaintext that rides inside Initiate and Message packets on UDP. Pure: bytes in, fields
 * out, and back; no clock, no socket. Integers are little-endian. Decoded data is a view into the
 * input (no copy).
 *
 * | offset | bytes | field                                                             |
 * |--------|-------|-------------------------------------------------------------------|
 * | 0      | 4     | message id; 0 = a pure acknowledgement (never acknowledged)       |
 * | 4      | 4     | id of a message being acknowledged (0: none)                      |
 * | 8      | 8     | size of range 1, which begins at stream position 0                |
 * | 16     | 4     | gap between range 1 and range 2                                   |
 * | 20     | 2     | size of range 2                                                   |
 * | 22     | 2     | gap, then 24: size of range 3                                     |
 * | 26     | 2     | gap, then 28: size of range 4                                     |
 * | 30     | 2     | gap, then 32: size of range 5                                     |
 * | 34     | 2     | gap, then 36: size of range 6                                     |
 * | 38     | 2     | D (data bytes, at most 1024) + 2048 (success EOF) / 4096 (failure) |
 * | 40     | 8     | stream position of the first data byte                            |
 * | 48     | P     | zero padding                                                      |
 * | 48+P   | D     | data: the last D bytes of the message                             |
 *
 * Messages are 48 to 1088 bytes. Like the reference we choose the length 192, 320, 576 or 1088,
 * the smallest that holds 64 + D; only where that does not fit (an Initiate carrying our signId
 * extension) the smallest multiple of 16 that holds 48 + D.
 */
import { DecodeError, InvalidArgumentError } from '../errors.js'

// ---- Specification ----
export const MESSAGE_HEADER_BYTES = 48
export const MIN_MESSAGE_BYTES = 48
export const MAX_MESSAGE_BYTES = 1088
/** Most data bytes in one block. */
export const MAX_BLOCK_BYTES = 1024
/** Flag: the stream ends successfully after this block. */
export const EOF_SUCCESS = 2048
/** Flag: the stream ends with a failure after this block. */
export const EOF_FAILURE = 4096
/** Acknowledgement ranges one message carries. */
export const MAX_ACK_RANGES = 6
/** Largest size of ranges 2..6 and of the gaps between ranges 2..6. */
export const MAX_SHORT_RANGE = 0xffff
/** Largest gap between range 1 and range 2. */
export const MAX_FIRST_GAP = 0xffff_ffff
/** Message lengths the reference uses (smallest that holds 64 + D). */
export const MESSAGE_LENGTHS = [192, 320, 576, 1088] as const

/** Stream positions are kept as JS numbers: at most 2^53 (the spec allows 2^60). */
const MAX_POSITION = Number.MAX_SAFE_INTEGER

export type EndOfStream = 0 | typeof EOF_SUCCESS | typeof EOF_FAILURE

/** Bytes [start, end) of the stream, acknowledged. */
export interface AckRange {
  start: number
  end: number
}

export interface StreamMessage {
  /** 1..2^32-1 for a message carrying a block; 0 for a pure acknowledgement. */
  id: number
  /** The id of a received message this one acknowledges, or 0. */
  acknowledging: number
  /**
   * Acknowledged ranges, ascending, absolute positions. The first range of the wire format always
   * begins at 0; when `ranges[0]` does not, the encoder writes an empty range 1. Empty ranges
   * are left out when decoding.
   */
  ranges: AckRange[]
  eof: EndOfStream
  /** Stream position of `data[0]` (of the EOF when data is empty). */
  offset: number
  data: Uint8Array
}

function readU64(b: Buffer, at: number): number {
  const lo = b.readUInt32LE(at)
  const hi = b.readUInt32LE(at + 4)
  if (hi > 0x1f_ffff) throw new DecodeError('a stream position beyond 2^53 is not supported')
  return hi * 0x1_0000_0000 + lo
}

function writeU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32LE(v >>> 0, at)
  b.writeUInt32LE(Math.floor(v / 0x1_0000_0000), at + 4)
}

/**
 * The length of a message carrying `dataBytes` bytes, at most `maxBytes` (a multiple of 16):
 * the reference's choice when it fits, else the smallest multiple of 16 that holds the data.
 * @throws InvalidArgumentError when the data does not fit in `maxBytes`.
 */
export function messageLengthFor(dataBytes: number, maxBytes: number = MAX_MESSAGE_BYTES): number {
  if (!Number.isInteger(dataBytes) || dataBytes < 0 || dataBytes > MAX_BLOCK_BYTES) throw new InvalidArgumentError(`a block holds 0 to ${MAX_BLOCK_BYTES} bytes, not ${dataBytes}`)
  for (const len of MESSAGE_LENGTHS) if (len >= 64 + dataBytes && len <= maxBytes) return len
  const len = Math.ceil((MESSAGE_HEADER_BYTES + dataBytes) / 16) * 16
  if (len > maxBytes) throw new InvalidArgumentError(`a block of ${dataBytes} bytes does not fit in a message of at most ${maxBytes} bytes`)
  return len
}

/** The most data bytes a message of at most `maxBytes` bytes can carry. */
export function maxBlockBytesFor(maxBytes: number): number {
  const room = Math.floor(Math.min(maxBytes, MAX_MESSAGE_BYTES) / 16) * 16 - MESSAGE_HEADER_BYTES
  return Math.max(0, Math.min(MAX_BLOCK_BYTES, room))
}

/**
 * Encodes a message (48..1088 bytes, see {@link messageLengthFor}).
 * @throws InvalidArgumentError for fields out of range or ranges the format cannot express.
 * @example encodeMessage({ id: 1, acknowledging: 0, ranges: [], eof: 0, offset: 0, data: Buffer.from('hi') }).length // 192
 */
export function encodeMessage(m: StreamMessage, maxBytes: number = MAX_MESSAGE_BYTES): Buffer {
  const d = m.data.length
  const len = messageLengthFor(d, maxBytes)
  const out = Buffer.alloc(len)
  encodeMessageHead(out, m.id, m.acknowledging, m.ranges, m.eof, m.offset, d, maxBytes)
  out.set(m.data, len - d)
  return out
}

/**
 * Writes everything of a message but its data at the front of `out`: the header and the zero
 * padding, `messageLengthFor(dataBytes, maxBytes) - dataBytes` bytes; the message is those bytes
 * followed by the `dataBytes` of data. `out` may hold an earlier message (a scratch buffer):
 * every byte of the head is written. Returns the head's length. Same checks as {@link encodeMessage}.
 * @throws InvalidArgumentError for fields out of range, or when `out` is too short.
 */
export function encodeMessageHead(
  out: Buffer,
  id: number,
  acknowledging: number,
  ranges: readonly AckRange[],
  eof: EndOfStream,
  offset: number,
  dataBytes: number,
  maxBytes: number = MAX_MESSAGE_BYTES
): number {
  const d = dataBytes
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) throw new InvalidArgumentError('message id must be a u32')
  if (!Number.isInteger(acknowledging) || acknowledging < 0 || acknowledging > 0xffff_ffff) throw new InvalidArgumentError('acknowledged id must be a u32')
  if (!Number.isInteger(offset) || offset < 0 || offset + d > MAX_POSITION) throw new InvalidArgumentError('stream offset out of range')
  if (eof !== 0 && eof !== EOF_SUCCESS && eof !== EOF_FAILURE) throw new InvalidArgumentError('eof must be 0, EOF_SUCCESS or EOF_FAILURE')
  const head = messageLengthFor(d, maxBytes) - d
  if (out.length < head) throw new InvalidArgumentError(`a ${out.length}-byte buffer cannot hold a ${head}-byte message head`)
  out.writeUInt32LE(id, 0)
  out.writeUInt32LE(acknowledging, 4)
  // TypedArray fill: Buffer#fill's argument handling costs more than these few bytes.
  zero(out, 8, 38)
  writeRanges(out, ranges)
  out.writeUInt16LE(d | eof, 38)
  writeU64(out, 40, offset)
  if (head > MESSAGE_HEADER_BYTES) zero(out, MESSAGE_HEADER_BYTES, head)
  return head
}

const typedFill = Uint8Array.prototype.fill

function zero(out: Buffer, from: number, to: number): void {
  typedFill.call(out, 0, from, to)
}

function writeRanges(out: Buffer, ranges: readonly AckRange[]): void {
  if (ranges.length === 0) return
  let i = 0
  let prevEnd = 0
  const first = ranges[0] as AckRange
  if (first.start === 0) {
    checkRange(first, 0)
    writeU64(out, 8, first.end)
    prevEnd = first.end
    i = 1
  }
  if (ranges.length - i > MAX_ACK_RANGES - 1) throw new InvalidArgumentError(`a message carries at most ${MAX_ACK_RANGES} ranges`)
  for (let slot = 0; i < ranges.length; i++, slot++) {
    const r = ranges[i] as AckRange
    checkRange(r, prevEnd)
    const gap = r.start - prevEnd
    const size = r.end - r.start
    if (size > MAX_SHORT_RANGE) throw new InvalidArgumentError(`range ${slot + 2} holds ${size} bytes, more than ${MAX_SHORT_RANGE}`)
    if (slot === 0) {
      if (gap > MAX_FIRST_GAP) throw new InvalidArgumentError('gap before range 2 exceeds 2^32-1')
      out.writeUInt32LE(gap, 16)
      out.writeUInt16LE(size, 20)
    } else {
      if (gap > MAX_SHORT_RANGE) throw new InvalidArgumentError(`gap before range ${slot + 2} exceeds ${MAX_SHORT_RANGE}`)
      out.writeUInt16LE(gap, 18 + 4 * slot)
      out.writeUInt16LE(size, 20 + 4 * slot)
    }
    prevEnd = r.end
  }
}

function checkRange(r: AckRange, notBefore: number): void {
  if (!Number.isInteger(r.start) || !Number.isInteger(r.end) || r.start < notBefore || r.end < r.start || r.end > MAX_POSITION) {
    throw new InvalidArgumentError('acknowledged ranges must be ascending, disjoint and within 2^53')
  }
}

/**
 * Decodes a message. Like the reference it accepts 48..1088 bytes with D <= 1024 and 48 + D
 * bytes at least; both EOF flags together read as a failure.
 * @throws DecodeError for anything else (the caller drops the message).
 */
export function decodeMessage(message: Uint8Array): StreamMessage {
  const m = decodeMessageInto(message, new MessageReader())
  return { id: m.id, acknowledging: m.acknowledging, ranges: m.ranges.map((r) => ({ start: r.start, end: r.end })), eof: m.eof, offset: m.offset, data: m.data }
}

/**
 * A decoded message whose fields, ranges and range objects are reused by every
 * {@link decodeMessageInto} into it: a stream decodes each incoming message into one reader and
 * is done with it before the next, so no object is made per datagram.
 */
export class MessageReader implements StreamMessage {
  id = 0
  acknowledging = 0
  readonly ranges: AckRange[] = []
  eof: EndOfStream = 0
  offset = 0
  data: Buffer = EMPTY
  /** Range objects, reused: `ranges` holds the first ranges.length of them. */
  private readonly pool: AckRange[] = Array.from({ length: MAX_ACK_RANGES }, () => ({ start: 0, end: 0 }))

  /** @internal Appends [start, end) to `ranges`, in a pooled object. */
  push(start: number, end: number): void {
    const r = this.pool[this.ranges.length] as AckRange
    r.start = start
    r.end = end
    this.ranges.push(r)
  }
}

const EMPTY = Buffer.alloc(0)

/**
 * {@link decodeMessage} into `into` (its earlier contents are overwritten; `into.data` is a view
 * into `message`). Same checks; on a throw `into` holds no valid message.
 * @throws DecodeError as decodeMessage does.
 */
export function decodeMessageInto(message: Uint8Array, into: MessageReader): MessageReader {
  const b = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength)
  const len = b.length
  into.ranges.length = 0
  if (len < MIN_MESSAGE_BYTES) throw new DecodeError(`a message holds at least ${MIN_MESSAGE_BYTES} bytes, got ${len}`)
  if (len > MAX_MESSAGE_BYTES) throw new DecodeError(`a message holds at most ${MAX_MESSAGE_BYTES} bytes, got ${len}`)
  const field = b.readUInt16LE(38)
  const flags = field & (EOF_SUCCESS | EOF_FAILURE)
  const d = field - flags
  if (d > MAX_BLOCK_BYTES) throw new DecodeError(`a block holds at most ${MAX_BLOCK_BYTES} bytes, got ${d}`)
  if (MESSAGE_HEADER_BYTES + d > len) throw new DecodeError(`a ${len}-byte message cannot carry ${d} data bytes`)
  const offset = readU64(b, 40)
  if (offset + d > MAX_POSITION) throw new DecodeError('a stream position beyond 2^53 is not supported')
  let end = readU64(b, 8)
  if (end > 0) into.push(0, end)
  let start = end + b.readUInt32LE(16)
  end = start + b.readUInt16LE(20)
  if (end > MAX_POSITION) throw new DecodeError('an acknowledged range beyond 2^53 is not supported')
  if (end > start) into.push(start, end)
  for (let at = 22; at < 38; at += 4) {
    start = end + b.readUInt16LE(at)
    end = start + b.readUInt16LE(at + 2)
    if (end > MAX_POSITION) throw new DecodeError('an acknowledged range beyond 2^53 is not supported')
    if (end > start) into.push(start, end)
  }
  into.id = b.readUInt32LE(0)
  into.acknowledging = b.readUInt32LE(4)
  into.eof = flags & EOF_FAILURE ? EOF_FAILURE : flags ? EOF_SUCCESS : 0
  into.offset = offset
  into.data = d === 0 ? EMPTY : b.subarray(len - d)
  return into
}
