/**
 * An established CurveCP session: seals outgoing Message packets and opens incoming ones with the
 * short-term shared key (C' <-> S'). Nonces are strict: our counter only grows, and a packet whose
 * counter is not above the last accepted one is dropped, so a replayed or reordered-old packet
 * never reaches the application. Counters are full 64-bit values (nonces.ts): the peer may start
 * anywhere below 2^64, and counter 2^64-1 ends the session. On UDP, where datagrams may come out
 * of order, a packet dropped this way is simply lost: the message layer above resends it.
 */
import { MAC_BYTES, secretboxInto, secretboxOpen, secretboxOpenInto, wipe } from '../crypto/sodium.js'
import {
  BOX_OVERHEAD_BYTES,
  CLIENT_MESSAGE_BASE_BYTES,
  CLIENT_MESSAGE_MAGIC,
  NONCE_CLIENT_INITIATE,
  NONCE_CLIENT_MESSAGE,
  NONCE_SERVER_MESSAGE,
  SERVER_MESSAGE_BASE_BYTES,
  SERVER_MESSAGE_MAGIC
} from './constants.js'
import { counter64, readCounter, type Counter64 } from './nonces.js'
import {
  CLIENT_MESSAGE_BOX_OFFSET,
  INITIATE_INNER_BASE_BYTES,
  SERVER_MESSAGE_BOX_OFFSET,
  decodeInitiate,
  writeClientMessageHeader,
  writeServerMessageHeader,
  type PacketLimits
} from './packets.js'
import { InvalidArgumentError, StateError } from '../errors.js'

export type Role = 'client' | 'server'

export interface SessionKeys {
  role: Role
  /** crypto_box_beforenm(C', s') on the server, (S', c') on the client. */
  sharedKey: Buffer
  clientShortTermKey: Buffer
  clientExtension: Buffer
  serverExtension: Buffer
  /** Next counter we send with (client: after Hello and Initiate). */
  nextSendCounter: number | Counter64
  /** Highest counter accepted from the peer so far (0: none); any 64-bit value. */
  lastReceivedCounter: number | Counter64
  limits: PacketLimits
}

/** Why a packet was dropped; counted in {@link Session.drops}. */
export type DropReason = 'malformed' | 'wrong-key' | 'replayed' | 'forged' | 'too-large'

export class Session {
  readonly role: Role
  readonly limits: PacketLimits
  readonly clientShortTermKey: Buffer
  /** Dropped packets by reason. */
  readonly drops: Record<DropReason, number> = { malformed: 0, 'wrong-key': 0, replayed: 0, forged: 0, 'too-large': 0 }
  private readonly key: Buffer
  private readonly clientExtension: Buffer
  private readonly serverExtension: Buffer
  // 64-bit counters as 32-bit halves (see nonces.ts): the peer may start anywhere below 2^64.
  private sendHi: number
  private sendLo: number
  /** Set once counter 2^64-1 has been used: the next seal() closes the session. */
  private sendExhausted = false
  private lastHi: number
  private lastLo: number
  private readonly scratch: Counter64 = { hi: 0, lo: 0 }
  /** Our Message nonce: its prefix is written once, the counter per packet. */
  private readonly sendNonce = Buffer.allocUnsafe(24)
  /** The peer's: which prefix it holds now (Messages', or an Initiate's on the server). */
  private readonly recvNonce = Buffer.allocUnsafe(24)
  private recvPrefix: Buffer
  /** What our Message packets start with: magic, extensions (and C' from a client), before the nonce. */
  private readonly header: Buffer
  /** Where the box starts in our Message packets. */
  private readonly boxOffset: number
  private closed = false

  constructor(keys: SessionKeys) {
    this.role = keys.role
    this.key = keys.sharedKey
    this.limits = keys.limits
    this.clientShortTermKey = keys.clientShortTermKey
    this.clientExtension = keys.clientExtension
    this.serverExtension = keys.serverExtension
    const send = typeof keys.nextSendCounter === 'number' ? counter64(keys.nextSendCounter) : keys.nextSendCounter
    const last = typeof keys.lastReceivedCounter === 'number' ? counter64(keys.lastReceivedCounter) : keys.lastReceivedCounter
    this.sendHi = send.hi
    this.sendLo = send.lo
    this.lastHi = last.hi
    this.lastLo = last.lo
    const client = this.role === 'client'
    ;(client ? NONCE_CLIENT_MESSAGE : NONCE_SERVER_MESSAGE).copy(this.sendNonce, 0)
    this.recvPrefix = client ? NONCE_SERVER_MESSAGE : NONCE_CLIENT_MESSAGE
    this.recvPrefix.copy(this.recvNonce, 0)
    this.boxOffset = client ? CLIENT_MESSAGE_BOX_OFFSET : SERVER_MESSAGE_BOX_OFFSET
    const header = Buffer.alloc(this.boxOffset)
    const noNonce = Buffer.alloc(8)
    if (client) writeClientMessageHeader(header, this.serverExtension, this.clientExtension, this.clientShortTermKey, noNonce)
    else writeServerMessageHeader(header, this.clientExtension, this.serverExtension, noNonce)
    this.header = header.subarray(0, this.boxOffset - 8)
  }

  /** Largest message one packet carries. */
  get maxMessage(): number {
    return this.limits.maxMessage
  }

  /**
   * A Message packet carrying `message` (at most {@link maxMessage} bytes). With `headroom`, the
   * packet starts that many bytes into the returned buffer: room for a stream transport's length
   * prefix, so that the packet leaves in one write without a copy.
   */
  seal(message: Uint8Array, headroom = 0): Buffer {
    const out = this.sealStart(message.length, headroom)
    secretboxInto(out.subarray(headroom + this.boxOffset), message, this.sendNonce, this.key)
    return out
  }

  /**
   * One Message packet carrying `parts` back to back (`total` bytes in all), like seal() of their
   * concatenation: the parts are copied once, straight into the packet, and encrypted there.
   */
  sealParts(parts: readonly Uint8Array[], total: number, headroom = 0): Buffer {
    const out = this.sealStart(total, headroom)
    const box = headroom + this.boxOffset
    const plain = box + MAC_BYTES
    let at = plain
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] as Uint8Array
      out.set(part, at)
      at += part.length
    }
    if (at - plain !== total) throw new InvalidArgumentError(`parts hold ${at - plain} bytes, not ${total}`)
    // In place: libsodium writes the ciphertext over the plaintext (c == m) and the MAC before it.
    secretboxInto(out.subarray(box, plain + total), out.subarray(plain, plain + total), this.sendNonce, this.key)
    return out
  }

  /**
   * Bytes a message must have free before it, in its own buffer, for {@link sealInPlace} with
   * `headroom` (the larger role's, so that a caller need not know which side it is).
   */
  static roomFor(headroom: number): number {
    return headroom + CLIENT_MESSAGE_BOX_OFFSET + MAC_BYTES
  }

  /**
   * Like seal(), without a second buffer: the packet is built around `message` in the buffer it
   * lies in, whose {@link Session.roomFor}(headroom) bytes before it the caller owns and gives
   * up, with the message itself (it is encrypted where it lies). The packet starts `headroom`
   * bytes into the returned view, as with seal().
   */
  sealInPlace(message: Buffer, headroom = 0): Buffer {
    const room = headroom + this.boxOffset + MAC_BYTES
    if (message.byteOffset < room) throw new InvalidArgumentError(`sealing in place needs ${room} bytes before the message, it has ${message.byteOffset}`)
    const out = Buffer.from(message.buffer, message.byteOffset - room, room + message.length)
    this.sealStart(message.length, headroom, out)
    // c == m - 16: libsodium writes the ciphertext over the plaintext and the MAC before it.
    secretboxInto(out.subarray(headroom + this.boxOffset), message, this.sendNonce, this.key)
    return out
  }

  /**
   * The checks of every seal, the next nonce, and the packet with its header written (into `into`
   * when given); its box starts at headroom + boxOffset.
   */
  private sealStart(length: number, headroom: number, into?: Buffer): Buffer {
    if (this.closed) throw new StateError('ERR_CLOSED', 'session is closed')
    if (length > this.limits.maxMessage) throw new InvalidArgumentError(`message of ${length} bytes exceeds ${this.limits.maxMessage}`)
    // UDP: the peer's decoder refuses anything but a positive multiple of 16; never send such a packet.
    if (this.limits.padded && (length < 16 || length % 16 !== 0)) {
      throw new InvalidArgumentError(`message of ${length} bytes is not a positive multiple of 16 (padded limits)`)
    }
    const box = headroom + this.boxOffset
    const size = box + MAC_BYTES + length
    // A datagram's packet is handed to the socket and dropped: cut from a slab (see datagramBuffer).
    const out = into ?? (this.limits.padded ? datagramBuffer(size) : Buffer.allocUnsafe(size))
    // The header's fixed part, then the nonce's counter (written into sendNonce by nextSendNonce).
    out.set(this.header, headroom)
    this.nextSendNonce(out, box - 8)
    return out
  }

  /**
   * Writes the next counter into `sendNonce` (whose prefix is fixed) and at `at` in `packet`, and
   * advances it. A counter is never used twice: after 2^64-1 the session closes (unreachable in
   * practice from our start at 1, but a nonce reused under one key would give the key stream away).
   * @throws StateError (ERR_CLOSED) when the counter is exhausted.
   */
  private nextSendNonce(packet: Buffer, at: number): void {
    if (this.sendExhausted) {
      this.close()
      throw new StateError('ERR_CLOSED', 'the nonce counter reached 2^64-1: session closed')
    }
    const lo = this.sendLo
    const hi = this.sendHi
    this.sendNonce.writeUInt32LE(lo, 16)
    this.sendNonce.writeUInt32LE(hi, 20)
    packet.writeUInt32LE(lo, at)
    packet.writeUInt32LE(hi, at + 4)
    if (lo !== 0xffff_ffff) this.sendLo = lo + 1
    else if (hi !== 0xffff_ffff) {
      this.sendHi = hi + 1
      this.sendLo = 0
    } else this.sendExhausted = true
  }

  /**
   * True when `counter` is above the last one accepted (the strict nonce rule), full 64 bits.
   */
  private isFresh(counter: Counter64): boolean {
    return counter.hi > this.lastHi || (counter.hi === this.lastHi && counter.lo > this.lastLo)
  }

  /** Records an accepted counter; at 2^64-1 nothing more can be accepted, so the session closes. */
  private accepted(counter: Counter64): void {
    this.lastHi = counter.hi
    this.lastLo = counter.lo
    if (counter.hi === 0xffff_ffff && counter.lo === 0xffff_ffff) this.close()
  }

  /**
   * The message inside a packet from the peer, or null when the packet is dropped (malformed,
   * not for this session, replayed, or forged). Never throws on hostile input. `inPlace`: the
   * caller owns `packet` and will not read it again; the message is decrypted over the
   * ciphertext and returned as a view into it (no allocation).
   */
  open(packet: Uint8Array, inPlace = false): Buffer | null {
    if (this.closed) return null
    // The layout of decodeClientMessage / decodeServerMessage (packets.ts), read where it lies:
    // no packet object and no view per field on this path, which every packet takes.
    const fromClient = this.role === 'server'
    let b: Buffer
    let boxAt: number
    try {
      b = Buffer.isBuffer(packet) ? packet : Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength)
      boxAt = fromClient ? CLIENT_MESSAGE_BOX_OFFSET : SERVER_MESSAGE_BOX_OFFSET
      const length = b.length - boxAt - BOX_OVERHEAD_BYTES
      const magic = fromClient ? CLIENT_MESSAGE_MAGIC : SERVER_MESSAGE_MAGIC
      if (b.length < magic.length || !sameAt(b, 0, magic)) throw new Error('not a Message packet of the peer')
      if (length < 0 || length > this.limits.maxMessage || (this.limits.padded && (length < 16 || length % 16 !== 0))) throw new Error('message length')
    } catch {
      this.drops.malformed++
      return null
    }
    // Extensions and C' are outside the box, so they are checked here: no byte goes unchecked.
    // A Client Message: S ext at 8, C ext at 24, C' at 40; a Server Message: C ext at 8, S ext at 24.
    const clientExtAt = fromClient ? 24 : 8
    const serverExtAt = fromClient ? 8 : 24
    if (!sameAt(b, clientExtAt, this.clientExtension) || !sameAt(b, serverExtAt, this.serverExtension) || (fromClient && !sameAt(b, 40, this.clientShortTermKey))) {
      this.drops['wrong-key']++
      return null
    }
    const nonceAt = boxAt - 8
    const counter = readCounter(b, nonceAt, this.scratch)
    if (!this.isFresh(counter)) {
      this.drops.replayed++
      return null
    }
    this.setRecvNonce(fromClient ? NONCE_CLIENT_MESSAGE : NONCE_SERVER_MESSAGE, counter)
    const box = b.subarray(boxAt)
    let plain: Buffer | null = null
    if (!inPlace) plain = secretboxOpen(box, this.recvNonce, this.key)
    else {
      const into = box.subarray(MAC_BYTES)
      if (secretboxOpenInto(into, box, this.recvNonce, this.key)) plain = into
    }
    if (!plain) {
      this.drops.forged++
      return null
    }
    this.accepted(counter)
    return plain
  }

  /**
   * Server side, UDP: a further Initiate from the client of this session (the client repeats its
   * Initiate, each carrying a message, until our first Message reaches it). Opens the box with the
   * session key under the same strict nonce rule as Messages and returns the Initiate's message
   * (what follows C, the vouch and the domain name), or null when dropped. Never throws.
   */
  openInitiate(packet: Uint8Array): Buffer | null {
    if (this.closed || this.role !== 'server') return null
    let p
    try {
      p = decodeInitiate(packet, this.limits)
    } catch {
      this.drops.malformed++
      return null
    }
    if (!p.clientExtension.equals(this.clientExtension) || !p.serverExtension.equals(this.serverExtension) || !p.clientShortTermKey.equals(this.clientShortTermKey)) {
      this.drops['wrong-key']++
      return null
    }
    const counter = readCounter(p.nonce, 0, this.scratch)
    if (!this.isFresh(counter)) {
      this.drops.replayed++
      return null
    }
    this.setRecvNonce(NONCE_CLIENT_INITIATE, counter)
    const plain = secretboxOpen(p.box, this.recvNonce, this.key)
    if (!plain || plain.length < INITIATE_INNER_BASE_BYTES) {
      this.drops.forged++
      return null
    }
    this.accepted(counter)
    return plain.subarray(INITIATE_INNER_BASE_BYTES)
  }

  /** The peer's nonce: `prefix` (copied only when it changes) || `counter`, little-endian. */
  private setRecvNonce(prefix: Buffer, counter: Counter64): void {
    if (prefix !== this.recvPrefix) {
      prefix.copy(this.recvNonce, 0)
      this.recvPrefix = prefix
    }
    this.recvNonce.writeUInt32LE(counter.lo, 16)
    this.recvNonce.writeUInt32LE(counter.hi, 20)
  }

  /** Total dropped packets. */
  get dropped(): number {
    let n = 0
    for (const v of Object.values(this.drops)) n += v
    return n
  }

  /** Forgets the short-term key (forward secrecy). Idempotent. */
  close(): void {
    if (this.closed) return
    this.closed = true
    wipe(this.key)
  }
}

/**
 * True when `bytes` holds `expected` at `at` (the caller has checked the length). Compared here,
 * not with Buffer#compare or #equals, which cross into C++ on every call: more than comparing 8 to
 * 32 bytes costs. Not constant-time: for public fields only (magic, extensions, C').
 */
function sameAt(bytes: Buffer, at: number, expected: Buffer): boolean {
  for (let i = 0; i < expected.length; i++) if (bytes[at + i] !== expected[i]) return false
  return true
}

/**
 * Datagram packets are cut from a slab of our own: each is sent at once and dropped, and Node's
 * shared 8 KiB pool, which every small allocUnsafe draws on, made a new ArrayBuffer every six or
 * so. A slab is never written again once handed out; it lives while any packet cut from it does
 * (one the socket queued included), as the pool does.
 */
const SLAB_BYTES = 64 * 1024
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
let slabAt = 0
function datagramBuffer(size: number): Buffer {
  if (size > SLAB_BYTES - slabAt) {
    if (size > SLAB_BYTES / 4) return Buffer.allocUnsafe(size)
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
    slabAt = 0
  }
  const out = slab.subarray(slabAt, slabAt + size)
  // 8-byte aligned, as Node's pool does.
  slabAt = (slabAt + size + 7) & ~7
  return out
}

/** Bytes a sealed message adds. */
export const SEAL_OVERHEAD = { client: CLIENT_MESSAGE_BASE_BYTES, server: SERVER_MESSAGE_BASE_BYTES, mac: MAC_BYTES }
