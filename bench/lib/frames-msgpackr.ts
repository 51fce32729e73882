/**
 * COMPARISON ONLY (bench/sections/15-frames.ts): the msgpackr-based platform frame codec that
 * src/connections/frames.ts used for a while, kept verbatim apart from this header, the import
 * path and the `copy` switch (the NoCopy exports at the end). Nothing under src/ uses it; msgpackr
 * is a devDependency for this bench only. The hand-written codec in frames.ts replaced it because
 * it was measured clearly faster (see that file's header).
 *
 * frame  = length:u32be type:u8 body          (length counts type + body)
 * DATA 1 = one MessagePack array of exactly five elements, and nothing after it:
 *            [ id         bin, exactly 16 bytes
 *              protocol   str, 1..255 bytes of UTF-8
 *              topic      str, 0..65535 bytes of UTF-8
 *              expiresAt  float64 (milliseconds since the epoch), or nil: the message does not expire
 *              payload    str: the application sent a string; bin: it sent bytes ]
 * ACK  2 = one MessagePack array of one or more ids (bin, exactly 16 bytes each), nothing after it
 * PING 3 = (empty)                                         (keepalive)
 *
 * Bodies are encoded and decoded by msgpackr (a Packr/Unpackr for plain MessagePack: no records,
 * no structures). Notes on the schema:
 * - expiresAt: msgpackr writes a whole number that fits in 32 bits as a MessagePack int (and -0 as
 *   0); every real timestamp is above 2^32, so it goes out as float64. A reader takes any
 *   MessagePack int of up to 32 bits, float32 or float64 whose value is finite; nil means absent.
 *   A 64-bit int is refused.
 * - The str/bin distinction carries the payload's kind: a string arrives as a string, bytes arrive
 *   as a Buffer. MessagePack extension types are not part of the schema: where one stands for a
 *   field, the field fails its type check (msgpackr decodes its own extensions first, so its
 *   bundled-strings extension, which decodes to strings, is the one that can pass).
 * - Decoding is strict: another shape, another type, an id of another length, an empty or long
 *   protocol, a long topic, a non-finite expiresAt, bytes after the value, or anything msgpackr
 *   cannot decode throws DecodeError (msgpackr's error is the `cause`).
 *
 * The two copies it makes to be safe (what the bench's "with the copies" row measures):
 * - encode: msgpackr packs into one buffer shared by every Packr in the process and hands out
 *   views into it, so each frame is copied out to a buffer of its own exact size (a queued frame
 *   must not be overwritten by the next pack, nor pin a large shared buffer);
 * - decode: the body is copied before unpacking, so a decoded id, ACK id or bytes payload never
 *   aliases the buffer passed to decodeFrame (msgpackr returns bin values as views into its input).
 * encodeDataNoCopy / decodeFrameNoCopy skip both: the frame returned is a view into msgpackr's
 * shared buffer, valid only until the next pack anywhere in the process. For measurement only.
 */
import { Packr, RESERVE_START_SPACE, Unpackr } from 'msgpackr'
import { DecodeError } from '../../dist/esm/errors.js'

import { FRAME_ACK, FRAME_DATA, FRAME_HEADER_BYTES, FRAME_PING, MESSAGE_ID_BYTES } from '../../dist/esm/connections/frames.js'
import type { AckFrame, DataFrame, Frame, PingFrame } from '../../dist/esm/connections/frames.js'
export { FRAME_ACK, FRAME_DATA, FRAME_HEADER_BYTES, FRAME_PING, MESSAGE_ID_BYTES }
/** The frame shapes are the codec in use's: only the bytes differ. */
export type { AckFrame, DataFrame, Frame, PingFrame }

/** Plain MessagePack: arrays stay arrays, no record extension, no shared structures. */
const packr = new Packr({ useRecords: false })
/**
 * The same for reading, with msgpackr's structured-clone references (ext 0x69/0x70) refused.
 * Without `structures`, every unpack starts from an empty record table: nothing one peer sends
 * can change how another peer's frames decode.
 */
const unpackr = new Unpackr({ useRecords: false, structuredClone: false })

/**
 * msgpackr packs into one buffer shared by every Packr in the process (any other code using the
 * same msgpackr included) and hands out views into it. So each frame is copied out to a buffer of
 * its own exact size, as the hand-written codec allocated: a queued frame then pins only its own
 * bytes (the connection manager's queue limits count frame lengths), and nothing another msgpackr
 * user does to the shared buffer can reach it.
 */
const SHARED_BUFFER_LIMIT = 1024 * 1024
function pack(type: number, value: unknown, copy = true): Buffer {
  const packed = packr.pack(value, RESERVE_START_SPACE | FRAME_HEADER_BYTES)
  if (!copy) {
    packed.writeUInt32BE(packed.length - 4, 0)
    packed[4] = type
    return packed
  }
  const out = Buffer.allocUnsafe(packed.length)
  packed.copy(out)
  out.writeUInt32BE(out.length - 4, 0)
  out[4] = type
  // After a large frame msgpackr keeps packing into buffers that large (2-4x the frame): give it a
  // fresh small one. Nothing else writes to the one it leaves, so views others hold stay valid.
  if (packed.buffer.byteLength > SHARED_BUFFER_LIMIT) packr.useBuffer(Buffer.allocUnsafeSlow(8192))
  return out
}

const isId = (x: unknown): x is Buffer => Buffer.isBuffer(x) && x.length === MESSAGE_ID_BYTES

/** Encodes a DATA frame. Throws DecodeError when a field is out of range. */
export function encodeData(frame: Omit<DataFrame, 'type'>): Buffer {
  return encodeDataWith(frame, true)
}

/** encodeData without the copy out of msgpackr's shared buffer (measurement only). */
export function encodeDataNoCopy(frame: Omit<DataFrame, 'type'>): Buffer {
  return encodeDataWith(frame, false)
}

function encodeDataWith(frame: Omit<DataFrame, 'type'>, copy: boolean): Buffer {
  const { id, protocol, topic, expiresAt, payload } = frame
  if (!(id instanceof Uint8Array) || id.length !== MESSAGE_ID_BYTES) throw new DecodeError('a message id is 16 bytes')
  if (typeof protocol !== 'string') throw new DecodeError('protocol must be a string')
  const protocolBytes = Buffer.byteLength(protocol, 'utf8')
  if (protocolBytes === 0 || protocolBytes > 255) throw new DecodeError('protocol must be 1..255 bytes')
  if (typeof topic !== 'string' || Buffer.byteLength(topic, 'utf8') > 65535) throw new DecodeError('topic must be a string of at most 65535 bytes')
  // The decoder refuses a non-finite expiresAt (and closes the session): never send one.
  if (expiresAt !== undefined && !(typeof expiresAt === 'number' && Number.isFinite(expiresAt))) throw new DecodeError('expiresAt must be a finite number')
  if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) throw new DecodeError('a payload is a string or bytes')
  return pack(FRAME_DATA, [id, protocol, topic, expiresAt ?? null, payload], copy)
}

/** Encodes an ACK frame for one or more message ids. */
export function encodeAck(ids: Buffer[]): Buffer {
  if (ids.length === 0) throw new DecodeError('an ACK carries at least one id')
  for (const id of ids) if (!(id instanceof Uint8Array) || id.length !== MESSAGE_ID_BYTES) throw new DecodeError('a message id is 16 bytes')
  return pack(FRAME_ACK, ids)
}

const PING = Buffer.from([0, 0, 0, 1, FRAME_PING])
export function encodePing(): Buffer {
  return PING
}

/**
 * The one MessagePack value a DATA or ACK body holds, decoded from a private copy of the body.
 * Read as a sequence and stopped after the first value, so bytes after it are detected here
 * (msgpackr's own check would first JSON-serialize the whole decoded value into its message).
 */
function unpackBody(body: Buffer, what: string, copy: boolean): unknown {
  if (body.length < 2) throw new DecodeError(`empty ${what} body`)
  const own = copy ? Buffer.from(body.subarray(1)) : body.subarray(1)
  let value: unknown
  let end = -1
  try {
    unpackr.unpackMultiple(own, (v: unknown, _start?: number, stop?: number) => {
      value = v
      end = stop ?? -1
      return false
    })
  } catch (err) {
    throw new DecodeError(`malformed ${what} body: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  if (end !== own.length) throw new DecodeError(`${what} body: ${end < 0 ? 'no value' : `${own.length - end} byte(s) after the value`}`)
  return value
}

/** Decodes one frame body (type byte first). Throws DecodeError on anything malformed. */
export function decodeFrame(body: Buffer): Frame {
  return decodeFrameWith(body, true)
}

/** decodeFrame without the copy of the body: decoded bytes alias `body` (measurement only). */
export function decodeFrameNoCopy(body: Buffer): Frame {
  return decodeFrameWith(body, false)
}

function decodeFrameWith(body: Buffer, copy: boolean): Frame {
  if (body.length < 1) throw new DecodeError('empty frame')
  const type = body[0]
  if (type === FRAME_PING) {
    if (body.length !== 1) throw new DecodeError('a PING has no body')
    return { type: FRAME_PING }
  }
  if (type === FRAME_ACK) {
    const ids = unpackBody(body, 'ACK', copy)
    if (!Array.isArray(ids) || ids.length === 0) throw new DecodeError('an ACK body is an array of one or more ids')
    for (const id of ids) if (!isId(id)) throw new DecodeError('an ACK id is bin of exactly 16 bytes')
    return { type: FRAME_ACK, ids: ids as Buffer[] }
  }
  if (type !== FRAME_DATA) throw new DecodeError(`unknown frame type ${type}`)
  const fields = unpackBody(body, 'DATA', copy)
  if (!Array.isArray(fields) || fields.length !== 5) throw new DecodeError('a DATA body is an array of exactly 5 elements')
  const [id, protocol, topic, expiresAt, payload] = fields as unknown[]
  if (!isId(id)) throw new DecodeError('the DATA id is not bin of exactly 16 bytes')
  if (typeof protocol !== 'string') throw new DecodeError('the DATA protocol is not a str')
  const protocolBytes = Buffer.byteLength(protocol, 'utf8')
  if (protocolBytes === 0 || protocolBytes > 255) throw new DecodeError('the DATA protocol is not 1..255 bytes')
  if (typeof topic !== 'string') throw new DecodeError('the DATA topic is not a str')
  if (Buffer.byteLength(topic, 'utf8') > 65535) throw new DecodeError('the DATA topic is over 65535 bytes')
  if (expiresAt !== null && !(typeof expiresAt === 'number' && Number.isFinite(expiresAt))) {
    throw new DecodeError('the DATA expiresAt is neither a finite number nor nil')
  }
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) throw new DecodeError('the DATA payload is neither str nor bin')
  const frame: DataFrame = { type: FRAME_DATA, id, protocol, topic, payload }
  if (expiresAt !== null) frame.expiresAt = expiresAt
  return frame
}

/** The outer framing (u32 length, type byte) is the same for both codecs: the one in use serves. */
export { FrameDecoder } from '../../dist/esm/connections/frames.js'
