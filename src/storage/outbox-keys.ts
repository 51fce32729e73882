/**
 * The outbox's storage format (see outbox-store.ts for the layout): key and value codecs, pure
 * (strings in, values out, no I/O, no clock). A key of one message tells its destination,
 * sequence number, expiry and size, so scans read keys only.
 */
import { parseMessageId } from './message-id.js'
import type { BatchOp } from './store.js'

export const MAIN = 'outbox.m.'
export const COUNT = 'outbox.c.'
export const META = 'outbox.meta'
/** Above every character a key part uses ('0-9a-f', '.', base64): ends a prefix range. */
export const PREFIX_END = '~'
export const SCAN_CHUNK = 4096
export const HEX_WIDTH = 14
export const BYTES_WIDTH = 8

export interface Counter {
  messages: number
  bytes: number
}

/** What a stored counter record holds: counts and a lower bound of the earliest expiry. */
export interface Committed extends Counter {
  minExpiresAt: number
}

/** The tag of one write in a batch: how it changes its destination's counter. */
export interface Delta {
  dest: string
  messages: number
  bytes: number
  expiresAt?: number
  /** Told once the write of this tag is done (or failed: `err`), after its batch. */
  after?: (tag: Delta, err: Error | undefined) => void
}

export interface KeyParts {
  dest: string
  seq: number
  expiresAt: number
  bytes: number
}

export function hex(n: number, width = HEX_WIDTH): string {
  return n.toString(16).padStart(width, '0')
}

export function mainKey(k: KeyParts): string {
  return `${MAIN}${k.dest}.${hex(k.seq)}.${hex(k.expiresAt)}.${hex(k.bytes, BYTES_WIDTH)}`
}

const KEY_RE = /^outbox\.m\.([^.]+)\.([0-9a-f]{14})\.([0-9a-f]{14})\.([0-9a-f]{8})$/

export function parseMainKey(key: string): KeyParts | null {
  const m = KEY_RE.exec(key)
  if (!m) return null
  return { dest: m[1] as string, seq: parseInt(m[2] as string, 16), expiresAt: parseInt(m[3] as string, 16), bytes: parseInt(m[4] as string, 16) }
}

export interface StoredRecord {
  i: string
  t: string
  p: string
  c: number
  b: string
}

/**
 * The stored JSON of a message, `{i, t, p, c, b}`, built by concatenation: the base64 payload is
 * neither copied nor scanned for escapes again (measured: JSON.stringify of the whole record
 * was the largest cost of an append).
 */
export function encodeRecord(id: string, topic: string, protocol: string, createdAt: number, payload: Uint8Array, head = -1): string {
  const b64 = head < 0 ? Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('base64') : base64WithHead(head, payload)
  return '{"i":"' + id + '","t":' + JSON.stringify(topic) + ',"p":' + JSON.stringify(protocol) + ',"c":' + createdAt + ',"b":"' + b64 + '"}'
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/**
 * Base64 of a head byte then the payload, without copying the payload behind the byte: the
 * first three bytes make four characters of their own, and the rest encodes on its own.
 */
function base64WithHead(head: number, payload: Uint8Array): string {
  if (payload.length < 2) {
    const short = Buffer.allocUnsafe(payload.length + 1)
    short[0] = head
    short.set(payload, 1)
    return short.toString('base64')
  }
  const n = (head << 16) | ((payload[0] as number) << 8) | (payload[1] as number)
  const first = (B64[n >>> 18] as string) + (B64[(n >>> 12) & 63] as string) + (B64[(n >>> 6) & 63] as string) + (B64[n & 63] as string)
  return first + Buffer.from(payload.buffer, payload.byteOffset + 2, payload.length - 2).toString('base64')
}

export function decodeRecord(value: string): StoredRecord | null {
  try {
    const r = JSON.parse(value) as Partial<StoredRecord>
    if (typeof r.i !== 'string' || !parseMessageId(r.i)) return null
    if (typeof r.t !== 'string' || typeof r.p !== 'string' || typeof r.b !== 'string' || typeof r.c !== 'number') return null
    return r as StoredRecord
  } catch {
    return null
  }
}

/** A decoded message record, whichever form it was stored in. */
export interface StoredMessage {
  id: string
  topic: string
  protocol: string
  createdAt: number
  payload: Buffer
}

/**
 * First byte of a binary record. A JSON record starts with '{' (0x7b), so both forms can be
 * told apart in one store: records written before the binary form still load.
 */
export const BINARY_RECORD = 0x01
/** Tag, createdAt (float64), id length (uint8), topic and protocol lengths (uint32 each). */
const FIXED_BYTES = 1 + 8 + 1 + 4 + 4

/**
 * Where binary records are built: slices of a large buffer, so a record allocates no buffer of
 * its own. A writer whose records are copied at once (the group commit copies byte values) calls
 * {@link reset} and reuses one chunk; else a chunk is freed once no record in it is referenced.
 */
export class RecordArena {
  private chunk = Buffer.allocUnsafeSlow(0)
  private used = 0
  /** A record larger than a chunk gets a buffer of its own, not kept after take(). */
  private single: Buffer | undefined
  constructor(private readonly chunkBytes = 1 << 20) {}

  /** A buffer of at least `max` writable bytes at `offset`; call {@link take} with what was used. */
  reserve(max: number): Buffer {
    if (max > this.chunkBytes) {
      this.single = Buffer.allocUnsafeSlow(max)
      return this.single
    }
    if (this.chunk.length - this.used < max) {
      this.chunk = Buffer.allocUnsafeSlow(this.chunkBytes)
      this.used = 0
    }
    return this.chunk
  }

  /** Records taken so far may be overwritten: their bytes were copied elsewhere. */
  reset(): void {
    this.used = 0
  }

  get offset(): number {
    return this.single ? 0 : this.used
  }

  /** The `bytes` written at {@link offset} since {@link reserve}, as their own view. */
  take(bytes: number): Buffer {
    if (this.single) {
      const own = this.single.subarray(0, bytes)
      this.single = undefined
      return own
    }
    const view = this.chunk.subarray(this.used, this.used + bytes)
    this.used += bytes
    return view
  }
}

/**
 * The stored bytes of a message (stores with byte values, the default store): tag, createdAt,
 * id, topic, protocol, then the payload as it is. No base64 (4/3 the size) and no text
 * encoding of the whole record: measured, see docs/benchmarks.md "Outbox storage".
 */
export function encodeRecordBinary(arena: RecordArena, id: string, topic: string, protocol: string, createdAt: number, payload: Uint8Array, head = -1): Buffer {
  const buf = arena.reserve(FIXED_BYTES + id.length + 3 * (topic.length + protocol.length) + 1 + payload.length)
  const start = arena.offset
  let at = start
  buf[at++] = BINARY_RECORD
  buf.writeDoubleBE(createdAt, at)
  at += 8
  buf[at++] = id.length
  at += buf.write(id, at, 'latin1')
  const topicBytes = buf.write(topic, at + 4, 'utf8')
  buf.writeUInt32BE(topicBytes, at)
  at += 4 + topicBytes
  const protocolBytes = buf.write(protocol, at + 4, 'utf8')
  buf.writeUInt32BE(protocolBytes, at)
  at += 4 + protocolBytes
  // A head byte (see OutboxInput.head) is stored as the payload's first byte.
  if (head >= 0) buf[at++] = head
  buf.set(payload, at)
  at += payload.length
  return arena.take(at - start)
}

/** A stored message in either form (binary, or the JSON string or its bytes); null when damaged. */
export function decodeStored(value: string | Buffer): StoredMessage | null {
  if (typeof value === 'string' || value[0] === 0x7b) {
    const r = decodeRecord(typeof value === 'string' ? value : value.toString('utf8'))
    return r && { id: r.i, topic: r.t, protocol: r.p, createdAt: r.c, payload: Buffer.from(r.b, 'base64') }
  }
  if (value.length < FIXED_BYTES || value[0] !== BINARY_RECORD) return null
  let at = 1
  const createdAt = value.readDoubleBE(at)
  at += 8
  const idLength = value[at++] as number
  if (at + idLength + 8 > value.length) return null
  const id = value.toString('latin1', at, at + idLength)
  at += idLength
  const topicBytes = value.readUInt32BE(at)
  at += 4
  if (at + topicBytes + 4 > value.length) return null
  const topic = value.toString('utf8', at, at + topicBytes)
  at += topicBytes
  const protocolBytes = value.readUInt32BE(at)
  at += 4
  if (at + protocolBytes > value.length) return null
  const protocol = value.toString('utf8', at, at + protocolBytes)
  at += protocolBytes
  if (!parseMessageId(id) || !Number.isFinite(createdAt)) return null
  return { id, topic, protocol, createdAt, payload: value.subarray(at) }
}

export function decodeCommitted(value: string): Committed | null {
  try {
    const c = JSON.parse(value) as { m?: unknown; b?: unknown; e?: unknown }
    if (!Number.isSafeInteger(c.m) || !Number.isSafeInteger(c.b) || typeof c.e !== 'number' || (c.m as number) < 0 || (c.b as number) < 0) return null
    return { messages: c.m as number, bytes: c.b as number, minExpiresAt: c.e }
  } catch {
    return null
  }
}


export function counterOp(dest: string, c: Committed): BatchOp {
  return c.messages > 0
    ? { type: 'put', key: COUNT + dest, value: JSON.stringify({ m: c.messages, b: c.bytes, e: Number.isFinite(c.minExpiresAt) ? c.minExpiresAt : 0 }) }
    : { type: 'del', key: COUNT + dest }
}
