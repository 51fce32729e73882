/**
 * Platform frames: what travels inside a secure channel's byte stream. Pure codec.
 *
 * frame  = length:u32be type:u8 body          (length counts type + body)
 * DATA 1 = flags:u8 id:16 protocolLen:u8 protocol topicLen:u16be topic
 *          [expiresAt:f64be when flags & 1] payload          (payload: the rest)
 *          flags & 2: payload is UTF-8 text (a string), else bytes
 *          flags & 4: durable: the id is `stream:8 seq:u64be` of the sender's outbox (see
 *          delivery.ts); the receiver records it persistently and ACKs only once recorded
 * ACK  2 = id:16 ...                                       (one or more ids)
 * PING 3 = (empty)                                         (keepalive)
 *
 * A frame over the maximum, an unknown type or flag, a truncated field, an empty protocol, a
 * non-finite expiresAt, a PING with a body or an ACK body that is not whole 16-byte ids throws
 * DecodeError; the connection manager closes that session on it. A decoded id, ACK id or bytes
 * payload is a view into the body passed to decodeFrame (no copy).
 *
 * Why hand-written and not a maintained library (the rule: a library unless a hand-written codec
 * is clearly faster, measured). The fastest maintained MessagePack library for Node was used here
 * for a while; that codec is kept under bench/lib/ for comparison. Measured as used, end to end
 * over TCP, this codec gave 1.3x the bulk throughput (231-245 vs 172-188 MB/s) and 1.28x the 1 KiB
 * ping-pong rate. At codec level (1 KiB DATA frame, encode + decode) it is 1.53-1.58x the library
 * with the two copies the library needs to be safe, and 1.34x when both decode to views (the
 * library's copy out of its process-wide pack buffer cannot be avoided). Speed is half the reason;
 * the other half is that the library shares state across the whole process (one pack buffer,
 * `addExtension` applying to every decoder) and parses untrusted bytes in a native addon, while
 * this codec is ~200 lines whose only state is a small fixed memo of names decoded (readName),
 * fuzzed with the CurveCP decoders (scripts/fuzz.ts). bench/sections/15-frames.ts re-measures it
 * on every run and prints every ratio.
 */
import { DecodeError, InvalidArgumentError } from '../errors.js'

export const FRAME_HEADER_BYTES = 5
export const MESSAGE_ID_BYTES = 16
/** Default bound on one frame (a 16 MiB payload fits with room to spare). */
export const DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024

/** Names (protocol, topic) up to this many bytes are copied by hand and memoised when decoded. */
const SHORT_NAME_BYTES = 32

export const FRAME_DATA = 1
export const FRAME_ACK = 2
export const FRAME_PING = 3

const FLAG_EXPIRES = 1
const FLAG_TEXT = 2
const FLAG_DURABLE = 4

export interface DataFrame {
  type: typeof FRAME_DATA
  id: Buffer
  protocol: string
  topic: string
  expiresAt?: number
  payload: string | Buffer
  /** A message from the sender's persistent outbox (flag 4): its id is durable. */
  durable?: boolean
}

export interface AckFrame {
  type: typeof FRAME_ACK
  ids: Buffer[]
}

export interface PingFrame {
  type: typeof FRAME_PING
}

export type Frame = DataFrame | AckFrame | PingFrame

/**
 * Frames encoded with spare room before them, and how much: those the sender gives up once
 * written (realtime ones, never resent), so that a channel may build its packet around the frame
 * and encrypt it where it lies instead of into a second buffer (see {@link takeSpareRoom}).
 */
const spare = new WeakMap<Buffer, number>()

/** Room a sender leaves before a frame it gives up (enough for a TCP packet's header, MAC and length prefix: 100 bytes). */
export const SPARE_ROOM_BYTES = 128
/** Frames below this are not given room: small ones are packed together, copied into a shared packet. */
export const SPARE_ROOM_MIN_BYTES = 16 * 1024

/**
 * Bytes before `frame` in its buffer that a channel may overwrite, with the frame itself, when it
 * writes it (0: none; the frame must be left intact). Taking it clears it: a frame is written so
 * once at most.
 */
export function takeSpareRoom(frame: Buffer): number {
  const room = spare.get(frame)
  if (room === undefined) return 0
  spare.delete(frame)
  return room
}

/**
 * Encodes a DATA frame. Throws InvalidArgumentError when a field is out of range. With `room`,
 * the frame is encoded that many bytes into its own buffer and the room is recorded for
 * {@link takeSpareRoom}: the caller promises not to need the frame's bytes once it is written.
 * `payloadBytes`: the payload's UTF-8 length when the caller measured it already (else -1).
 */
export function encodeData(frame: Omit<DataFrame, 'type'>, room = 0, payloadBytes = -1): Buffer {
  // Strings are measured, then written straight into the frame: no intermediate buffers.
  const protocol = frame.protocol
  const topic = frame.topic
  const protocolLength = Buffer.byteLength(protocol, 'utf8')
  const topicLength = Buffer.byteLength(topic, 'utf8')
  if (frame.id.length !== MESSAGE_ID_BYTES) throw new InvalidArgumentError('a message id is 16 bytes')
  if (protocolLength === 0 || protocolLength > 255) throw new InvalidArgumentError('protocol must be 1..255 bytes')
  if (topicLength > 65535) throw new InvalidArgumentError('topic must be at most 65535 bytes')
  // The decoder refuses a non-finite expiresAt (and closes the session): never send one.
  if (frame.expiresAt !== undefined && !Number.isFinite(frame.expiresAt)) throw new InvalidArgumentError('expiresAt must be a finite number')
  const payload = frame.payload
  const text = typeof payload === 'string'
  const payloadLength = !text ? payload.length : payloadBytes >= 0 ? payloadBytes : Buffer.byteLength(payload, 'utf8')
  const hasExpiry = frame.expiresAt !== undefined
  const bodyLength = 1 + MESSAGE_ID_BYTES + 1 + protocolLength + 2 + topicLength + (hasExpiry ? 8 : 0) + payloadLength
  const whole = Buffer.allocUnsafe(room + FRAME_HEADER_BYTES + bodyLength) as Utf8Buffer
  const out = room ? (whole.subarray(room) as Utf8Buffer) : whole
  let at = 0
  out.writeUInt32BE(1 + bodyLength, at)
  at += 4
  out[at++] = FRAME_DATA
  out[at++] = (hasExpiry ? FLAG_EXPIRES : 0) | (text ? FLAG_TEXT : 0) | (frame.durable === true ? FLAG_DURABLE : 0)
  const id = frame.id
  for (let i = 0; i < MESSAGE_ID_BYTES; i++) out[at + i] = id[i] as number // 16 bytes: cheaper than a copy() call
  at += MESSAGE_ID_BYTES
  out[at++] = protocolLength
  at = writeName(out, protocol, protocolLength, at)
  out[at++] = topicLength >>> 8
  out[at++] = topicLength & 0xff
  at = writeName(out, topic, topicLength, at)
  if (hasExpiry) {
    out.writeDoubleBE(frame.expiresAt as number, at)
    at += 8
  }
  // As many bytes as characters: ASCII, whose Latin-1 bytes are its UTF-8 bytes, copied as they lie.
  if (!text) payload.copy(out, at)
  else if (payloadLength === payload.length) out.latin1Write(payload, at, payloadLength)
  else out.utf8Write(payload, at, payloadLength)
  if (room) spare.set(out, room)
  return out
}

/**
 * Node's UTF-8 codec of Buffer without the argument handling of write() and toString() around
 * it (about 85 ns a call, most of the cost for a short string). On Buffer.prototype since Node's
 * early days, though not in its typings.
 */
interface Utf8Buffer extends Buffer {
  utf8Write(text: string, offset: number, length?: number): number
  latin1Write(text: string, offset: number, length?: number): number
  utf8Slice(start: number, end: number): string
}

/** Writes a protocol or topic name of `length` UTF-8 bytes at `at`; returns the end. */
function writeName(out: Utf8Buffer, name: string, length: number, at: number): number {
  // As many bytes as characters: all ASCII. A short one is copied here, without a native call.
  if (length === name.length && length <= SHORT_NAME_BYTES) {
    for (let i = 0; i < length; i++) out[at + i] = name.charCodeAt(i)
    return at + length
  }
  return at + out.utf8Write(name, at, length)
}

export function encodeAck(ids: Buffer[]): Buffer {
  if (ids.length === 0) throw new InvalidArgumentError('an ACK carries at least one id')
  // A shorter id would leave bytes of the unzeroed buffer on the wire.
  for (const id of ids) if (id.length !== MESSAGE_ID_BYTES) throw new InvalidArgumentError('a message id is 16 bytes')
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + ids.length * MESSAGE_ID_BYTES)
  out.writeUInt32BE(1 + ids.length * MESSAGE_ID_BYTES, 0)
  out[4] = FRAME_ACK
  ids.forEach((id, i) => id.copy(out, FRAME_HEADER_BYTES + i * MESSAGE_ID_BYTES))
  return out
}

const PING = Buffer.from([0, 0, 0, 1, FRAME_PING])
export function encodePing(): Buffer {
  return PING
}

/**
 * The end of an ACK body's ids (its length: they lie from offset 1, 16 bytes each), checked as
 * {@link decodeFrame} checks them, for a reader that takes them where they lie.
 * @throws DecodeError when the body is not whole ids
 */
export function ackIdsEnd(body: Buffer): number {
  const n = body.length - 1
  if (n <= 0 || n % MESSAGE_ID_BYTES !== 0) throw new DecodeError('an ACK body is a whole number of 16-byte ids')
  return body.length
}

/** Decodes one frame body (type byte first). Throws DecodeError on anything malformed. */
export function decodeFrame(body: Buffer): Frame {
  if (body.length < 1) throw new DecodeError('empty frame')
  const type = body[0]
  if (type === FRAME_PING) {
    if (body.length !== 1) throw new DecodeError('a PING has no body')
    return { type: FRAME_PING }
  }
  if (type === FRAME_ACK) {
    const n = body.length - 1
    if (n === 0 || n % MESSAGE_ID_BYTES !== 0) throw new DecodeError('an ACK body is a whole number of 16-byte ids')
    const ids: Buffer[] = []
    for (let at = 1; at < body.length; at += MESSAGE_ID_BYTES) ids.push(body.subarray(at, at + MESSAGE_ID_BYTES))
    return { type: FRAME_ACK, ids }
  }
  if (type !== FRAME_DATA) throw new DecodeError(`unknown frame type ${type}`)
  let at = 1
  // Bounds are checked inline (a closure per frame showed up in profiles).
  if (at + 1 + MESSAGE_ID_BYTES + 1 > body.length) throw truncated()
  const flags = body[at++] as number
  if (flags & ~(FLAG_EXPIRES | FLAG_TEXT | FLAG_DURABLE)) throw new DecodeError('unknown DATA flags')
  const id = body.subarray(at, at + MESSAGE_ID_BYTES)
  at += MESSAGE_ID_BYTES
  const protocolLength = body[at++] as number
  if (protocolLength === 0) throw new DecodeError('empty protocol')
  if (at + protocolLength + 2 > body.length) throw truncated()
  const protocol = readName(body as Utf8Buffer, at, protocolLength)
  at += protocolLength
  const topicLength = ((body[at] as number) << 8) | (body[at + 1] as number)
  at += 2
  if (at + topicLength > body.length) throw truncated()
  const topic = readName(body as Utf8Buffer, at, topicLength)
  at += topicLength
  let expiresAt: number | undefined
  if (flags & FLAG_EXPIRES) {
    if (at + 8 > body.length) throw truncated()
    expiresAt = body.readDoubleBE(at)
    at += 8
    if (!Number.isFinite(expiresAt)) throw new DecodeError('expiresAt is not a finite number')
  }
  const payload = flags & FLAG_TEXT ? (body as Utf8Buffer).utf8Slice(at, body.length) : body.subarray(at)
  // Made whole, one literal per shape (absent fields stay absent), instead of grown field by field.
  if (expiresAt === undefined) {
    return flags & FLAG_DURABLE ? { type: FRAME_DATA, id, protocol, topic, payload, durable: true } : { type: FRAME_DATA, id, protocol, topic, payload }
  }
  return flags & FLAG_DURABLE ? { type: FRAME_DATA, id, protocol, topic, expiresAt, payload, durable: true } : { type: FRAME_DATA, id, protocol, topic, expiresAt, payload }
}

/**
 * Names (protocols and topics) of up to SHORT_NAME_BYTES bytes decoded lately, by their bytes:
 * most frames repeat a few, and a string made per frame (~150 ns through toString, then hashed
 * afresh by every Map it is looked up in) cost more than comparing its bytes with the last one
 * seen in its slot. Direct-mapped and fixed in size (64 slots of 32 bytes): a miss replaces the
 * slot. The string given is the one the bytes decode to, so a hit changes nothing but the cost.
 */
const NAME_SLOTS = 64
const nameBytes = new Uint8Array(NAME_SLOTS * SHORT_NAME_BYTES)
const nameLengths = new Int32Array(NAME_SLOTS).fill(-1)
const names: string[] = new Array<string>(NAME_SLOTS).fill('')

/** The UTF-8 name of `length` bytes at `at` (checked to lie within `body`). */
function readName(body: Utf8Buffer, at: number, length: number): string {
  if (length > SHORT_NAME_BYTES) return body.utf8Slice(at, at + length)
  if (length === 0) return ''
  const last = body[at + length - 1] as number
  const slot = (length * 7 + (body[at] as number) * 3 + last + (body[at + (length >>> 1)] as number) * 5) & (NAME_SLOTS - 1)
  const base = slot * SHORT_NAME_BYTES
  if (nameLengths[slot] === length) {
    let i = 0
    while (i < length && nameBytes[base + i] === body[at + i]) i++
    if (i === length) return names[slot] as string
  }
  const name = body.utf8Slice(at, at + length)
  for (let i = 0; i < length; i++) nameBytes[base + i] = body[at + i] as number
  nameLengths[slot] = length
  names[slot] = name
  return name
}

function truncated(): DecodeError {
  return new DecodeError('truncated DATA frame')
}

/**
 * Splits a byte stream into frame bodies. Bounded: a declared length above `maxFrameBytes` throws
 * before anything is buffered for it.
 */
export class FrameDecoder {
  private readonly maxFrameBytes: number
  private chunks: Buffer[] = []
  private buffered = 0
  private need = -1

  constructor(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes
  }

  /** A frame is begun and not complete (its bytes are held). */
  get midFrame(): boolean {
    return this.buffered > 0 || this.need >= 0
  }

  /** @throws DecodeError when a frame is declared too large or empty. */
  push(chunk: Buffer, onBody: (body: Buffer) => void): void {
    if (chunk.length === 0) return
    if (this.buffered === 0 && this.need < 0) {
      // Nothing held (the usual case: a packet holds whole frames): the frames are read where
      // they lie, one view each, and only a partial one at the end is held below.
      let at = 0
      const end = chunk.length
      while (end - at >= 4) {
        const len = chunk.readUInt32BE(at)
        if (len === 0) throw new DecodeError('a frame cannot be empty')
        if (len > this.maxFrameBytes) throw new DecodeError(`frame of ${len} bytes exceeds the maximum of ${this.maxFrameBytes}`)
        if (end - at - 4 < len) break
        at += 4 + len
        onBody(chunk.subarray(at - len, at))
      }
      if (at === end) return
      if (at !== 0) chunk = chunk.subarray(at)
    }
    this.chunks.push(chunk)
    this.buffered += chunk.length
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 4) return
        const head = this.take(4)
        const len = head.readUInt32BE(0)
        if (len === 0) throw new DecodeError('a frame cannot be empty')
        if (len > this.maxFrameBytes) throw new DecodeError(`frame of ${len} bytes exceeds the maximum of ${this.maxFrameBytes}`)
        this.need = len
      }
      if (this.buffered < this.need) return
      const body = this.take(this.need)
      this.need = -1
      onBody(body)
    }
  }

  private take(n: number): Buffer {
    let first = this.chunks[0] as Buffer
    if (first.length < n) {
      let total = 0
      let i = 0
      while (total < n) total += (this.chunks[i++] as Buffer).length
      first = Buffer.concat(this.chunks.slice(0, i), total)
      this.chunks.splice(0, i, first)
    }
    const out = first.subarray(0, n)
    if (first.length === n) this.chunks.shift()
    else this.chunks[0] = first.subarray(n)
    this.buffered -= n
    return out
  }
}
