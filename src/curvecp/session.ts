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
  NONCE_CLIENT_INITIATE,
  NONCE_CLIENT_MESSAGE,
  NONCE_SERVER_MESSAGE,
  SERVER_MESSAGE_BASE_BYTES
} from './constants.js'
import { counter64, readCounter, type Counter64 } from './nonces.js'
import {
  CLIENT_MESSAGE_BOX_OFFSET,
  INITIATE_INNER_BASE_BYTES,
  SERVER_MESSAGE_BOX_OFFSET,
  decodeClientMessage,
  decodeInitiate,
  decodeServerMessage,
  writeClientMessageHeader,
  writeServerMessageHeader,
  type ClientMessagePacket,
  type PacketLimits
} from './packets.js'
import { InvalidArgumentError, StateError } from '../errors.js'
import { sameBytes } from './same-bytes.js'

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
  private readonly sendNonce = Buffer.allocUnsafe(24)
  private readonly recvNonce = Buffer.allocUnsafe(24)
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
    const { out, box } = this.sealStart(message.length, headroom)
    secretboxInto(out.subarray(box), message, this.sendNonce, this.key)
    return out
  }

  /**
   * One Message packet carrying `parts` back to back (`total` bytes in all), like seal() of their
   * concatenation: the parts are copied once, straight into the packet, and encrypted there.
   */
  sealParts(parts: readonly Uint8Array[], total: number, headroom = 0): Buffer {
    const { out, box } = this.sealStart(total, headroom)
    const plain = box + MAC_BYTES
    let at = plain
    for (const part of parts) {
      out.set(part, at)
      at += part.length
    }
    if (at - plain !== total) throw new InvalidArgumentError(`parts hold ${at - plain} bytes, not ${total}`)
    // In place: libsodium writes the ciphertext over the plaintext (c == m) and the MAC before it.
    secretboxInto(out.subarray(box, plain + total), out.subarray(plain, plain + total), this.sendNonce, this.key)
    return out
  }

  /** The checks of every seal, the next nonce, and the packet with its header written. */
  private sealStart(length: number, headroom: number): { out: Buffer; box: number } {
    if (this.closed) throw new StateError('ERR_CLOSED', 'session is closed')
    if (length > this.limits.maxMessage) throw new InvalidArgumentError(`message of ${length} bytes exceeds ${this.limits.maxMessage}`)
    // UDP: the peer's decoder refuses anything but a positive multiple of 16; never send such a packet.
    if (this.limits.padded && (length < 16 || length % 16 !== 0)) {
      throw new InvalidArgumentError(`message of ${length} bytes is not a positive multiple of 16 (padded limits)`)
    }
    this.nextSendNonce()
    if (this.role === 'client') {
      const out = Buffer.allocUnsafe(headroom + CLIENT_MESSAGE_BASE_BYTES + length)
      const packet = headroom ? out.subarray(headroom) : out
      writeClientMessageHeader(packet, this.serverExtension, this.clientExtension, this.clientShortTermKey, this.sendNonce.subarray(16))
      return { out, box: headroom + CLIENT_MESSAGE_BOX_OFFSET }
    }
    const out = Buffer.allocUnsafe(headroom + SERVER_MESSAGE_BASE_BYTES + length)
    const packet = headroom ? out.subarray(headroom) : out
    writeServerMessageHeader(packet, this.clientExtension, this.serverExtension, this.sendNonce.subarray(16))
    return { out, box: headroom + SERVER_MESSAGE_BOX_OFFSET }
  }

  /**
   * Writes our prefix and the next counter into `sendNonce` and advances the counter. A counter is
   * never used twice: after 2^64-1 the session closes (unreachable in practice from our start at
   * 1, but a nonce reused under one key would give the key stream away).
   * @throws StateError (ERR_CLOSED) when the counter is exhausted.
   */
  private nextSendNonce(): void {
    if (this.sendExhausted) {
      this.close()
      throw new StateError('ERR_CLOSED', 'the nonce counter reached 2^64-1: session closed')
    }
    ;(this.role === 'client' ? NONCE_CLIENT_MESSAGE : NONCE_SERVER_MESSAGE).copy(this.sendNonce, 0)
    this.sendNonce.writeUInt32LE(this.sendLo, 16)
    this.sendNonce.writeUInt32LE(this.sendHi, 20)
    if (this.sendLo !== 0xffff_ffff) this.sendLo++
    else if (this.sendHi !== 0xffff_ffff) {
      this.sendHi++
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
    let nonce: Buffer
    let box: Buffer
    try {
      const p = this.role === 'server' ? decodeClientMessage(packet, this.limits) : decodeServerMessage(packet, this.limits)
      const key = this.role === 'server' ? (p as ClientMessagePacket).clientShortTermKey : undefined
      // Extensions and C' are outside the box, so they are checked here: no byte goes unchecked.
      if (!sameBytes(p.clientExtension, this.clientExtension) || !sameBytes(p.serverExtension, this.serverExtension) || (key && !sameBytes(key, this.clientShortTermKey))) {
        this.drops['wrong-key']++
        return null
      }
      nonce = p.nonce
      box = p.box
    } catch {
      this.drops.malformed++
      return null
    }
    const counter = readCounter(nonce, 0, this.scratch)
    if (!this.isFresh(counter)) {
      this.drops.replayed++
      return null
    }
    NONCE_PREFIX[this.role === 'server' ? 'client' : 'server'].copy(this.recvNonce, 0)
    nonce.copy(this.recvNonce, 16)
    let plain: Buffer | null = null
    if (box.length >= BOX_OVERHEAD_BYTES) {
      if (!inPlace) plain = secretboxOpen(box, this.recvNonce, this.key)
      else if (secretboxOpenInto(box.subarray(MAC_BYTES), box, this.recvNonce, this.key)) plain = box.subarray(MAC_BYTES)
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
    NONCE_CLIENT_INITIATE.copy(this.recvNonce, 0)
    p.nonce.copy(this.recvNonce, 16)
    const plain = secretboxOpen(p.box, this.recvNonce, this.key)
    if (!plain || plain.length < INITIATE_INNER_BASE_BYTES) {
      this.drops.forged++
      return null
    }
    this.accepted(counter)
    return plain.subarray(INITIATE_INNER_BASE_BYTES)
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

const NONCE_PREFIX = { client: NONCE_CLIENT_MESSAGE, server: NONCE_SERVER_MESSAGE }
/** Bytes a sealed message adds. */
export const SEAL_OVERHEAD = { client: CLIENT_MESSAGE_BASE_BYTES, server: SERVER_MESSAGE_BASE_BYTES, mac: MAC_BYTES }
