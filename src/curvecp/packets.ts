/**
 * CurveCP packet codec: bytes in, fields out, and back. Pure: no crypto, no clock, no socket.
 * Layouts are those of curvecp.org/packets.html; every decoder checks the exact length and the
 * magic and throws only {@link DecodeError}. Decoded fields are views into the input (no copy).
 *
 * | packet         | bytes  | layout                                                             |
 * |----------------|--------|--------------------------------------------------------------------|
 * | Hello          | 224    | magic, server ext, client ext, C', 64 zero, nonce(8), box(80)       |
 * | Cookie         | 200    | magic, client ext, server ext, nonce(16), box(144) = S', K          |
 * | Initiate       | 544+M  | magic, server ext, client ext, C', K(96), nonce(8), box(368+M)      |
 * | Client Message | 96+M   | magic, server ext, client ext, C', nonce(8), box(16+M)              |
 * | Server Message | 64+M   | magic, client ext, server ext, nonce(8), box(16+M)                  |
 */
import { DecodeError, InvalidArgumentError } from '../errors.js'
import {
  BOX_OVERHEAD_BYTES,
  CLIENT_MESSAGE_BASE_BYTES,
  CLIENT_MESSAGE_MAGIC,
  COOKIE_BYTES,
  COOKIE_MAGIC,
  COOKIE_PACKET_BYTES,
  DOMAIN_NAME_BYTES,
  EXTENSION_BYTES,
  HELLO_BYTES,
  HELLO_MAGIC,
  INITIATE_BASE_BYTES,
  INITIATE_MAGIC,
  KEY_BYTES,
  LONG_NONCE_BYTES,
  MAGIC_BYTES,
  SERVER_MESSAGE_BASE_BYTES,
  SERVER_MESSAGE_MAGIC,
  SHORT_NONCE_BYTES,
  STREAM_MAX_INITIATE_MESSAGE_BYTES,
  STREAM_MAX_MESSAGE_BYTES,
  UDP_MAX_INITIATE_MESSAGE_BYTES,
  UDP_MAX_MESSAGE_BYTES
} from './constants.js'

/** How long a message may be, per transport. */
export interface PacketLimits {
  maxMessage: number
  maxInitiateMessage: number
  /** UDP: messages are whole multiples of 16 bytes, at least 16 (the spec's rule). */
  padded: boolean
}

/** The spec's limits, for datagrams. */
export const UDP_LIMITS: PacketLimits = { maxMessage: UDP_MAX_MESSAGE_BYTES, maxInitiateMessage: UDP_MAX_INITIATE_MESSAGE_BYTES, padded: true }
/** Stream transports (TCP): larger messages, no padding (see constants.ts). */
export const STREAM_LIMITS: PacketLimits = { maxMessage: STREAM_MAX_MESSAGE_BYTES, maxInitiateMessage: STREAM_MAX_INITIATE_MESSAGE_BYTES, padded: false }

export type PacketKind = 'hello' | 'cookie' | 'initiate' | 'client-message' | 'server-message'

export interface HelloPacket {
  serverExtension: Buffer
  clientExtension: Buffer
  clientShortTermKey: Buffer
  nonce: Buffer
  box: Buffer
}

export interface CookiePacket {
  clientExtension: Buffer
  serverExtension: Buffer
  nonce: Buffer
  box: Buffer
}

export interface InitiatePacket {
  serverExtension: Buffer
  clientExtension: Buffer
  clientShortTermKey: Buffer
  cookie: Buffer
  nonce: Buffer
  box: Buffer
}

export interface ClientMessagePacket {
  serverExtension: Buffer
  clientExtension: Buffer
  clientShortTermKey: Buffer
  nonce: Buffer
  box: Buffer
}

export interface ServerMessagePacket {
  clientExtension: Buffer
  serverExtension: Buffer
  nonce: Buffer
  box: Buffer
}

/** Plaintext of the Initiate box: C, the vouch and its nonce, the server's domain name, M. */
export interface InitiateInner {
  clientLongTermKey: Buffer
  vouchNonce: Buffer
  vouch: Buffer
  domainName: Buffer
  message: Buffer
}

/** Plaintext of the Cookie box: S' and the cookie K. */
export interface CookieInner {
  serverShortTermKey: Buffer
  cookie: Buffer
}

export const HELLO_BOX_BYTES = 80
export const COOKIE_BOX_BYTES = 144
export const VOUCH_BYTES = 48
/** Initiate box plaintext without M: 32 + 16 + 48 + 256. */
export const INITIATE_INNER_BASE_BYTES = KEY_BYTES + LONG_NONCE_BYTES + VOUCH_BYTES + DOMAIN_NAME_BYTES
/** Cookie K: nonce(16) || secretbox(C' || s') (80). */
export const COOKIE_BOX_IN_COOKIE_BYTES = 80

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function hasMagic(packet: Uint8Array, magic: Buffer): boolean {
  if (packet.length < MAGIC_BYTES) return false
  for (let i = 0; i < MAGIC_BYTES; i++) if (packet[i] !== magic[i]) return false
  return true
}

/** Encoders: a field of the wrong size is the local caller's mistake. */
function expectBytes(name: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new InvalidArgumentError(`${name} must be ${length} bytes`)
  }
}

/** DecodeError for a packet received, InvalidArgumentError (`local`) for one we are encoding. */
function checkMessageLength(what: string, length: number, max: number, padded: boolean, local = false): void {
  const Err = local ? InvalidArgumentError : DecodeError
  if (length < 0) throw new Err(`${what} is too short`)
  if (length > max) throw new Err(`${what} carries ${length} message bytes, more than ${max}`)
  if (padded && (length < 16 || length % 16 !== 0)) throw new Err(`${what} message length ${length} is not a positive multiple of 16`)
}

/** The packet's kind by its magic, or null (never throws). */
export function packetKind(packet: Uint8Array): PacketKind | null {
  if (!(packet instanceof Uint8Array) || packet.length < MAGIC_BYTES) return null
  if (hasMagic(packet, CLIENT_MESSAGE_MAGIC)) return 'client-message'
  if (hasMagic(packet, SERVER_MESSAGE_MAGIC)) return 'server-message'
  if (hasMagic(packet, HELLO_MAGIC)) return 'hello'
  if (hasMagic(packet, COOKIE_MAGIC)) return 'cookie'
  if (hasMagic(packet, INITIATE_MAGIC)) return 'initiate'
  return null
}

// ---- Hello ----

export function encodeHello(p: HelloPacket): Buffer {
  expectBytes('serverExtension', p.serverExtension, EXTENSION_BYTES)
  expectBytes('clientExtension', p.clientExtension, EXTENSION_BYTES)
  expectBytes('clientShortTermKey', p.clientShortTermKey, KEY_BYTES)
  expectBytes('nonce', p.nonce, SHORT_NONCE_BYTES)
  expectBytes('box', p.box, HELLO_BOX_BYTES)
  const out = Buffer.alloc(HELLO_BYTES)
  HELLO_MAGIC.copy(out, 0)
  p.serverExtension.copy(out, 8)
  p.clientExtension.copy(out, 24)
  p.clientShortTermKey.copy(out, 40)
  // 64 zero bytes at 72: padding so that the Cookie reply (200) is never larger than the Hello.
  p.nonce.copy(out, 136)
  p.box.copy(out, 144)
  return out
}

export function decodeHello(packet: Uint8Array): HelloPacket {
  const b = toBuffer(packet)
  if (b.length !== HELLO_BYTES) throw new DecodeError(`a Hello is ${HELLO_BYTES} bytes, got ${b.length}`)
  if (!hasMagic(b, HELLO_MAGIC)) throw new DecodeError('not a Hello packet')
  for (let i = 72; i < 136; i++) if (b[i] !== 0) throw new DecodeError('the Hello padding is not zero')
  return {
    serverExtension: b.subarray(8, 24),
    clientExtension: b.subarray(24, 40),
    clientShortTermKey: b.subarray(40, 72),
    nonce: b.subarray(136, 144),
    box: b.subarray(144, 224)
  }
}

// ---- Cookie ----

export function encodeCookie(p: CookiePacket): Buffer {
  expectBytes('clientExtension', p.clientExtension, EXTENSION_BYTES)
  expectBytes('serverExtension', p.serverExtension, EXTENSION_BYTES)
  expectBytes('nonce', p.nonce, LONG_NONCE_BYTES)
  expectBytes('box', p.box, COOKIE_BOX_BYTES)
  const out = Buffer.allocUnsafe(COOKIE_PACKET_BYTES)
  COOKIE_MAGIC.copy(out, 0)
  p.clientExtension.copy(out, 8)
  p.serverExtension.copy(out, 24)
  p.nonce.copy(out, 40)
  p.box.copy(out, 56)
  return out
}

export function decodeCookie(packet: Uint8Array): CookiePacket {
  const b = toBuffer(packet)
  if (b.length !== COOKIE_PACKET_BYTES) throw new DecodeError(`a Cookie is ${COOKIE_PACKET_BYTES} bytes, got ${b.length}`)
  if (!hasMagic(b, COOKIE_MAGIC)) throw new DecodeError('not a Cookie packet')
  return { clientExtension: b.subarray(8, 24), serverExtension: b.subarray(24, 40), nonce: b.subarray(40, 56), box: b.subarray(56, 200) }
}

export function encodeCookieInner(p: CookieInner): Buffer {
  expectBytes('serverShortTermKey', p.serverShortTermKey, KEY_BYTES)
  expectBytes('cookie', p.cookie, COOKIE_BYTES)
  return Buffer.concat([p.serverShortTermKey, p.cookie])
}

export function decodeCookieInner(plain: Uint8Array): CookieInner {
  const b = toBuffer(plain)
  if (b.length !== KEY_BYTES + COOKIE_BYTES) throw new DecodeError('the Cookie box holds 128 bytes')
  return { serverShortTermKey: b.subarray(0, 32), cookie: b.subarray(32, 128) }
}

// ---- Initiate ----

export function encodeInitiate(p: InitiatePacket, limits: PacketLimits): Buffer {
  expectBytes('serverExtension', p.serverExtension, EXTENSION_BYTES)
  expectBytes('clientExtension', p.clientExtension, EXTENSION_BYTES)
  expectBytes('clientShortTermKey', p.clientShortTermKey, KEY_BYTES)
  expectBytes('cookie', p.cookie, COOKIE_BYTES)
  expectBytes('nonce', p.nonce, SHORT_NONCE_BYTES)
  const m = p.box.length - BOX_OVERHEAD_BYTES - INITIATE_INNER_BASE_BYTES
  checkMessageLength('an Initiate', m, limits.maxInitiateMessage, limits.padded, true)
  const out = Buffer.allocUnsafe(INITIATE_BASE_BYTES + m)
  INITIATE_MAGIC.copy(out, 0)
  p.serverExtension.copy(out, 8)
  p.clientExtension.copy(out, 24)
  p.clientShortTermKey.copy(out, 40)
  p.cookie.copy(out, 72)
  p.nonce.copy(out, 168)
  p.box.copy(out, 176)
  return out
}

export function decodeInitiate(packet: Uint8Array, limits: PacketLimits): InitiatePacket {
  const b = toBuffer(packet)
  if (!hasMagic(b, INITIATE_MAGIC)) throw new DecodeError('not an Initiate packet')
  checkMessageLength('an Initiate', b.length - INITIATE_BASE_BYTES, limits.maxInitiateMessage, limits.padded)
  return {
    serverExtension: b.subarray(8, 24),
    clientExtension: b.subarray(24, 40),
    clientShortTermKey: b.subarray(40, 72),
    cookie: b.subarray(72, 168),
    nonce: b.subarray(168, 176),
    box: b.subarray(176)
  }
}

export function encodeInitiateInner(p: InitiateInner): Buffer {
  expectBytes('clientLongTermKey', p.clientLongTermKey, KEY_BYTES)
  expectBytes('vouchNonce', p.vouchNonce, LONG_NONCE_BYTES)
  expectBytes('vouch', p.vouch, VOUCH_BYTES)
  expectBytes('domainName', p.domainName, DOMAIN_NAME_BYTES)
  return Buffer.concat([p.clientLongTermKey, p.vouchNonce, p.vouch, p.domainName, p.message])
}

export function decodeInitiateInner(plain: Uint8Array): InitiateInner {
  const b = toBuffer(plain)
  if (b.length < INITIATE_INNER_BASE_BYTES) throw new DecodeError('the Initiate box is too short')
  return {
    clientLongTermKey: b.subarray(0, 32),
    vouchNonce: b.subarray(32, 48),
    vouch: b.subarray(48, 96),
    domainName: b.subarray(96, 352),
    message: b.subarray(352)
  }
}

// ---- Messages ----

/** Writes a Client Message header into `out` (96 + M bytes); the caller fills the box at 80. */
export function writeClientMessageHeader(out: Buffer, serverExtension: Buffer, clientExtension: Buffer, clientShortTermKey: Buffer, nonce: Buffer): void {
  CLIENT_MESSAGE_MAGIC.copy(out, 0)
  serverExtension.copy(out, 8)
  clientExtension.copy(out, 24)
  clientShortTermKey.copy(out, 40)
  nonce.copy(out, 72, 0, 8)
}

/** Writes a Server Message header into `out` (64 + M bytes); the caller fills the box at 48. */
export function writeServerMessageHeader(out: Buffer, clientExtension: Buffer, serverExtension: Buffer, nonce: Buffer): void {
  SERVER_MESSAGE_MAGIC.copy(out, 0)
  clientExtension.copy(out, 8)
  serverExtension.copy(out, 24)
  nonce.copy(out, 40, 0, 8)
}

/** Offset of the box in a Client Message. */
export const CLIENT_MESSAGE_BOX_OFFSET = 80
/** Offset of the box in a Server Message. */
export const SERVER_MESSAGE_BOX_OFFSET = 48

export function encodeClientMessage(p: ClientMessagePacket, limits: PacketLimits): Buffer {
  expectBytes('serverExtension', p.serverExtension, EXTENSION_BYTES)
  expectBytes('clientExtension', p.clientExtension, EXTENSION_BYTES)
  expectBytes('clientShortTermKey', p.clientShortTermKey, KEY_BYTES)
  expectBytes('nonce', p.nonce, SHORT_NONCE_BYTES)
  checkMessageLength('a Client Message', p.box.length - BOX_OVERHEAD_BYTES, limits.maxMessage, limits.padded, true)
  const out = Buffer.allocUnsafe(CLIENT_MESSAGE_BASE_BYTES + p.box.length - BOX_OVERHEAD_BYTES)
  writeClientMessageHeader(out, p.serverExtension, p.clientExtension, p.clientShortTermKey, p.nonce)
  p.box.copy(out, CLIENT_MESSAGE_BOX_OFFSET)
  return out
}

export function decodeClientMessage(packet: Uint8Array, limits: PacketLimits): ClientMessagePacket {
  const b = toBuffer(packet)
  if (!hasMagic(b, CLIENT_MESSAGE_MAGIC)) throw new DecodeError('not a Client Message packet')
  checkMessageLength('a Client Message', b.length - CLIENT_MESSAGE_BASE_BYTES, limits.maxMessage, limits.padded)
  return {
    serverExtension: b.subarray(8, 24),
    clientExtension: b.subarray(24, 40),
    clientShortTermKey: b.subarray(40, 72),
    nonce: b.subarray(72, 80),
    box: b.subarray(80)
  }
}

export function encodeServerMessage(p: ServerMessagePacket, limits: PacketLimits): Buffer {
  expectBytes('clientExtension', p.clientExtension, EXTENSION_BYTES)
  expectBytes('serverExtension', p.serverExtension, EXTENSION_BYTES)
  expectBytes('nonce', p.nonce, SHORT_NONCE_BYTES)
  checkMessageLength('a Server Message', p.box.length - BOX_OVERHEAD_BYTES, limits.maxMessage, limits.padded, true)
  const out = Buffer.allocUnsafe(SERVER_MESSAGE_BASE_BYTES + p.box.length - BOX_OVERHEAD_BYTES)
  writeServerMessageHeader(out, p.clientExtension, p.serverExtension, p.nonce)
  p.box.copy(out, SERVER_MESSAGE_BOX_OFFSET)
  return out
}

export function decodeServerMessage(packet: Uint8Array, limits: PacketLimits): ServerMessagePacket {
  const b = toBuffer(packet)
  if (!hasMagic(b, SERVER_MESSAGE_MAGIC)) throw new DecodeError('not a Server Message packet')
  checkMessageLength('a Server Message', b.length - SERVER_MESSAGE_BASE_BYTES, limits.maxMessage, limits.padded)
  return { clientExtension: b.subarray(8, 24), serverExtension: b.subarray(24, 40), nonce: b.subarray(40, 48), box: b.subarray(48) }
}
