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
export function encodeRecord(id: string, topic: string, protocol: string, createdAt: number, payload: Uint8Array): string {
  const b64 = Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('base64')
  return '{"i":"' + id + '","t":' + JSON.stringify(topic) + ',"p":' + JSON.stringify(protocol) + ',"c":' + createdAt + ',"b":"' + b64 + '"}'
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
