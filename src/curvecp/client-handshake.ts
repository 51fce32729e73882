/**
 * The client side of the CurveCP handshake (curvecp.org/packets.html) as an explicit state
 * machine; the exchange as a whole is drawn in handshake.ts.
 *
 *   new --hello()--> hello-sent --handleCookie()--> initiate-sent --handleFirstServerMessage()--> established
 *   any state but established --fail()--> failed
 */
import {
  BOX_PUBLIC_BYTES,
  boxBeforeNm,
  boxKeyPair,
  randomBytes,
  secretbox,
  secretboxOpen,
  wipe,
  type KeyPair
} from '../crypto/sodium.js'
import { InvalidArgumentError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import { NONCE_CLIENT_HELLO, NONCE_CLIENT_INITIATE, NONCE_COOKIE, NONCE_VOUCH } from './constants.js'
import { AUTH_BYTES, AUTH_VERSION, ZERO_64, ZERO_EXTENSION, authMessage, encodeDomainName, longTermKey, padTo16, type AuthMode } from './handshake-common.js'
import { longTermNonce, shortTermNonce } from './nonces.js'
import { decodeCookie, decodeCookieInner, encodeHello, encodeInitiate, encodeInitiateInner, type PacketLimits } from './packets.js'
import { Session } from './session.js'


export type ClientState = 'new' | 'hello-sent' | 'initiate-sent' | 'established' | 'failed'

/**
 * A short-term key pair made ahead (see takeShortTerm and refillSoon), with its Hello key for
 * `server` when the last two handshakes went to that same server.
 */
let spare: { pair: KeyPair; server: Buffer | undefined; helloKey: Buffer | undefined } | undefined
let refilling = false
/** S of the last handshake, and whether the one before it went to the same S. */
let lastServer: Buffer | undefined
let repeated = false

/**
 * C' (and beforenm(S, c')) for a new handshake with `server`: the pair made ahead if there is
 * one, else a new one. A new spare is made once a handshake has sent its Initiate (refillSoon), so
 * the next dial does not wait for the key generation (~20 µs). When the last two handshakes went
 * to one server (a node that reconnects to its peer), the spare's Hello key for that server is
 * made then too (an X25519, ~35 µs more off the dial's path); after a handshake with another
 * server it is not, so a node that dials many servers makes no key it will not use. Each pair
 * serves one handshake only (it is taken, and wiped when the handshake ends); a Hello key made for
 * another server is wiped.
 */
function takeShortTerm(server: Buffer): { pair: KeyPair; helloKey: Buffer | null } {
  const taken = spare
  spare = undefined
  const pair = taken?.pair ?? boxKeyPair()
  let helloKey: Buffer | null
  if (taken?.helloKey && taken.server?.equals(server)) helloKey = taken.helloKey
  else {
    if (taken?.helloKey) wipe(taken.helloKey)
    helloKey = boxBeforeNm(server, pair.secretKey)
  }
  repeated = lastServer !== undefined && lastServer.equals(server)
  lastServer = Buffer.from(server)
  return { pair, helloKey }
}

/**
 * Makes the next spare after the current turn (once per turn). Called once the Initiate is made:
 * the client then waits for the server's answer. Not right after the Hello: a TCP dial's Hello
 * waits in its socket for the connect event, which the key generation (~55 µs with the Hello
 * key) would otherwise delay.
 */
function refillSoon(): void {
  if (refilling || spare) return
  refilling = true
  setImmediate(() => {
    refilling = false
    if (spare) return
    const next = boxKeyPair()
    const target = repeated ? lastServer : undefined
    spare = { pair: next, server: target, helloKey: (target && boxBeforeNm(target, next.secretKey)) || undefined }
  })
}

/** A spare key pair is ready for the next handshake (tests). */
export function spareReady(): boolean {
  return spare !== undefined
}

export interface ClientHandshakeOptions {
  identity: IdentityLike
  /** The server's long-term public key S (its boxId). */
  serverLongTermKey: Uint8Array
  limits: PacketLimits
  auth: AuthMode
  serverExtension?: Buffer
  clientExtension?: Buffer
  domainName?: string
}

export class ClientHandshake {
  state: ClientState = 'new'
  private readonly identity: IdentityLike
  private readonly serverLongTermKey: Buffer
  private readonly limits: PacketLimits
  private readonly auth: AuthMode
  private readonly serverExtension: Buffer
  private readonly clientExtension: Buffer
  private readonly domainName: Buffer
  private readonly shortTerm: KeyPair
  /** beforenm(S, c'): Hello and Cookie boxes. */
  private readonly helloKey: Buffer
  /** beforenm(S', c'): Initiate and Message boxes. */
  private sessionKey: Buffer | undefined
  private serverShortTermKey: Buffer | undefined
  private cookie: Buffer | undefined
  private counter = 1
  private session: Session | undefined

  constructor(options: ClientHandshakeOptions) {
    this.identity = options.identity
    this.serverLongTermKey = Buffer.from(options.serverLongTermKey)
    if (this.serverLongTermKey.length !== BOX_PUBLIC_BYTES) throw new InvalidArgumentError('server long-term key must be 32 bytes')
    this.limits = options.limits
    this.auth = options.auth
    this.serverExtension = options.serverExtension ?? ZERO_EXTENSION
    this.clientExtension = options.clientExtension ?? ZERO_EXTENSION
    this.domainName = encodeDomainName(options.domainName ?? '')
    const { pair, helloKey } = takeShortTerm(this.serverLongTermKey)
    this.shortTerm = pair
    if (!helloKey) {
      wipe(pair.secretKey)
      throw new InvalidArgumentError('the server key is a low-order point')
    }
    this.helloKey = helloKey
  }

  get clientShortTermKey(): Buffer {
    return this.shortTerm.publicKey
  }

  /** Room for application bytes in the Initiate, after our auth extension. */
  get initiateRoom(): number {
    return this.limits.maxInitiateMessage - (this.auth === 'signid' ? AUTH_BYTES : 0)
  }

  /** The Hello packet (may be sent again, each time with a fresh nonce). */
  hello(): Buffer {
    if (this.state !== 'new' && this.state !== 'hello-sent') throw new InvalidArgumentError(`cannot send Hello in state ${this.state}`)
    const counter = this.counter++
    const nonce = shortTermNonce(NONCE_CLIENT_HELLO, counter)
    this.state = 'hello-sent'
    return encodeHello({
      serverExtension: this.serverExtension,
      clientExtension: this.clientExtension,
      clientShortTermKey: this.shortTerm.publicKey,
      nonce: nonce.subarray(16),
      box: secretbox(ZERO_64, nonce, this.helloKey)
    })
  }

  /**
   * Consumes the Cookie and returns the Initiate packet carrying `message` (after our auth
   * extension, when on). Returns null and stays in `hello-sent` for a packet that does not open.
   */
  handleCookie(packet: Uint8Array, message: Uint8Array = Buffer.alloc(0)): Buffer | null {
    if (this.state !== 'hello-sent') return null
    let inner
    try {
      const cookie = decodeCookie(packet)
      if (!cookie.clientExtension.equals(this.clientExtension) || !cookie.serverExtension.equals(this.serverExtension)) return null
      const plain = secretboxOpen(cookie.box, longTermNonce(NONCE_COOKIE, cookie.nonce), this.helloKey)
      if (!plain) return null
      inner = decodeCookieInner(plain)
    } catch {
      return null
    }
    this.serverShortTermKey = Buffer.from(inner.serverShortTermKey)
    this.cookie = Buffer.from(inner.cookie)
    const k = boxBeforeNm(this.serverShortTermKey, this.shortTerm.secretKey)
    if (!k) return null
    this.sessionKey = k
    this.state = 'initiate-sent'
    const initiate = this.initiate(message)
    refillSoon()
    return initiate
  }

  /** The Initiate packet (again, e.g. for retransmission on UDP), with a fresh nonce. */
  initiate(message: Uint8Array = Buffer.alloc(0)): Buffer {
    if (this.state !== 'initiate-sent' || !this.sessionKey || !this.serverShortTermKey || !this.cookie) {
      throw new InvalidArgumentError(`cannot send Initiate in state ${this.state}`)
    }
    const vouchKey = longTermKey(this.identity, this.serverLongTermKey)
    if (!vouchKey) throw new InvalidArgumentError('the server key is a low-order point')
    const vouchNonce = randomBytes(16)
    const vouch = secretbox(this.shortTerm.publicKey, longTermNonce(NONCE_VOUCH, vouchNonce), vouchKey)
    wipe(vouchKey)
    let m: Buffer = Buffer.from(message)
    if (this.auth === 'signid') {
      const signId = Buffer.from(this.identity.getSignId(), 'base64')
      const signature = this.identity.sign(authMessage(this.shortTerm.publicKey, this.serverShortTermKey, this.serverLongTermKey))
      m = Buffer.concat([Buffer.from([AUTH_VERSION]), signId, signature, m])
    }
    if (this.limits.padded) m = padTo16(m)
    const counter = this.counter++
    const nonce = shortTermNonce(NONCE_CLIENT_INITIATE, counter)
    const inner = encodeInitiateInner({
      clientLongTermKey: Buffer.from(this.identity.getBoxId(), 'base64'),
      vouchNonce,
      vouch,
      domainName: this.domainName,
      message: m
    })
    return encodeInitiate(
      {
        serverExtension: this.serverExtension,
        clientExtension: this.clientExtension,
        clientShortTermKey: this.shortTerm.publicKey,
        cookie: this.cookie,
        nonce: nonce.subarray(16),
        box: secretbox(inner, nonce, this.sessionKey)
      },
      this.limits
    )
  }

  /**
   * Consumes the server's first Message: returns the established session and the message it
   * carried, or null when the packet does not open (stay in `initiate-sent`).
   */
  handleFirstServerMessage(packet: Uint8Array): { session: Session; message: Buffer } | null {
    if (this.state !== 'initiate-sent' || !this.sessionKey) return null
    const session = new Session({
      role: 'client',
      sharedKey: this.sessionKey,
      clientShortTermKey: this.shortTerm.publicKey,
      clientExtension: this.clientExtension,
      serverExtension: this.serverExtension,
      nextSendCounter: this.counter,
      lastReceivedCounter: 0,
      limits: this.limits
    })
    const message = session.open(packet)
    if (!message) return null
    this.state = 'established'
    this.session = session
    wipe(this.shortTerm.secretKey)
    wipe(this.helloKey)
    return { session, message }
  }

  /** Forgets every secret; the handshake can no longer proceed. */
  fail(): void {
    if (this.state !== 'established') {
      this.state = 'failed'
      wipe(this.shortTerm.secretKey)
      wipe(this.helloKey)
      if (this.sessionKey) wipe(this.sessionKey)
    }
  }
}
