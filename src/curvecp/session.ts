/**
 * An established CurveCP session: seals outgoing Message packets and opens incoming ones with the
 * short-term shared key (C' <-> S'). Nonces are strict: our counter only grows, and a packet whose
 * counter is not above the last accepted one is dropped, so a replayed or reordered-old packet
 * never reaches the application. (The UDP message layer keeps its own reordering; it asks for a
 * window instead, see `replayWindow`.)
 */
import { MAC_BYTES, secretboxInto, secretboxOpen, wipe } from '../crypto/sodium.js'
import {
  BOX_OVERHEAD_BYTES,
  CLIENT_MESSAGE_BASE_BYTES,
  NONCE_CLIENT_MESSAGE,
  NONCE_SERVER_MESSAGE,
  SERVER_MESSAGE_BASE_BYTES
} from './constants.js'
import { readCounter, shortTermNonce } from './nonces.js'
import {
  CLIENT_MESSAGE_BOX_OFFSET,
  SERVER_MESSAGE_BOX_OFFSET,
  decodeClientMessage,
  decodeServerMessage,
  writeClientMessageHeader,
  writeServerMessageHeader,
  type PacketLimits
} from './packets.js'
import { DecodeError } from '../errors.js'

export type Role = 'client' | 'server'

export interface SessionKeys {
  role: Role
  /** crypto_box_beforenm(C', s') on the server, (S', c') on the client. */
  sharedKey: Buffer
  clientShortTermKey: Buffer
  clientExtension: Buffer
  serverExtension: Buffer
  /** Next counter we send with (client: after Hello and Initiate). */
  nextSendCounter: number
  /** Highest counter accepted from the peer so far (0: none). */
  lastReceivedCounter: number
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
  private sendCounter: number
  private lastReceived: number
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
    this.sendCounter = keys.nextSendCounter
    this.lastReceived = keys.lastReceivedCounter
  }

  /** Largest message one packet carries. */
  get maxMessage(): number {
    return this.limits.maxMessage
  }

  /** A Message packet carrying `message` (at most {@link maxMessage} bytes). */
  seal(message: Uint8Array): Buffer {
    if (this.closed) throw new DecodeError('session is closed')
    if (message.length > this.limits.maxMessage) throw new DecodeError(`message of ${message.length} bytes exceeds ${this.limits.maxMessage}`)
    const counter = this.sendCounter++
    if (this.role === 'client') {
      const out = Buffer.allocUnsafe(CLIENT_MESSAGE_BASE_BYTES + message.length)
      shortTermNonce(NONCE_CLIENT_MESSAGE, counter, this.sendNonce)
      writeClientMessageHeader(out, this.serverExtension, this.clientExtension, this.clientShortTermKey, this.sendNonce.subarray(16))
      secretboxInto(out.subarray(CLIENT_MESSAGE_BOX_OFFSET), message, this.sendNonce, this.key)
      return out
    }
    const out = Buffer.allocUnsafe(SERVER_MESSAGE_BASE_BYTES + message.length)
    shortTermNonce(NONCE_SERVER_MESSAGE, counter, this.sendNonce)
    writeServerMessageHeader(out, this.clientExtension, this.serverExtension, this.sendNonce.subarray(16))
    secretboxInto(out.subarray(SERVER_MESSAGE_BOX_OFFSET), message, this.sendNonce, this.key)
    return out
  }

  /**
   * The message inside a packet from the peer, or null when the packet is dropped (malformed,
   * not for this session, replayed, or forged). Never throws on hostile input.
   */
  open(packet: Uint8Array): Buffer | null {
    if (this.closed) return null
    let nonce: Buffer
    let box: Buffer
    try {
      if (this.role === 'server') {
        const p = decodeClientMessage(packet, this.limits)
        if (!p.clientShortTermKey.equals(this.clientShortTermKey)) {
          this.drops['wrong-key']++
          return null
        }
        nonce = p.nonce
        box = p.box
      } else {
        const p = decodeServerMessage(packet, this.limits)
        nonce = p.nonce
        box = p.box
      }
    } catch {
      this.drops.malformed++
      return null
    }
    const counter = readCounter(nonce, 0)
    if (!(counter > this.lastReceived)) {
      this.drops.replayed++
      return null
    }
    NONCE_PREFIX[this.role === 'server' ? 'client' : 'server'].copy(this.recvNonce, 0)
    nonce.copy(this.recvNonce, 16)
    const plain = box.length >= BOX_OVERHEAD_BYTES ? secretboxOpen(box, this.recvNonce, this.key) : null
    if (!plain) {
      this.drops.forged++
      return null
    }
    this.lastReceived = counter
    return plain
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
