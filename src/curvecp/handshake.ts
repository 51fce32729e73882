/**
 * The CurveCP handshake (curvecp.org/packets.html), both sides, as explicit state machines.
 *
 *   client                                   server
 *   new ──Hello(C', Box[0](C'→S))──────────▶  (no state kept)
 *   hello-sent ◀──Cookie(Box[S',K](S→C'))──   K = secretbox[C',s'](minute key)
 *   initiate-sent ──Initiate(C',K,Box[C,V,N,M](C'→S'))─▶  opens K, checks V, replay, auth
 *   established ◀──Message(Box[M](S'→C'))──   established
 *
 * mm-platform's authentication extension (`auth: 'signid'`): the Initiate's message begins with
 * version(1) || signId(32) || Ed25519 signature(64) over
 * "mm-platform/curvecp/initiate/v1" || C' || S' || S. The server checks the signature and that
 * ed2curve(signId) is the client's long-term key C (already proven by the vouch), so a node cannot
 * claim another's signId. With `auth: 'none'` the handshake is plain CurveCP (for DJB's tools).
 */
import {
  BOX_PUBLIC_BYTES,
  boxBeforeNm,
  boxKeyPair,
  boxPublicFromSecret,
  equalBytes,
  randomBytes,
  secretbox,
  secretboxOpen,
  signPublicToBoxPublic,
  verify,
  wipe,
  type KeyPair
} from '../crypto/sodium.js'
import { InvalidArgumentError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import { formatId } from '../identity/ids.js'
import {
  COOKIE_BYTES,
  DOMAIN_NAME_BYTES,
  EXTENSION_BYTES,
  KEY_BYTES,
  MAX_REMEMBERED_COOKIES,
  MINUTE_KEY_ROTATION_MS,
  NONCE_CLIENT_HELLO,
  NONCE_CLIENT_INITIATE,
  NONCE_COOKIE,
  NONCE_MINUTE_KEY,
  NONCE_VOUCH
} from './constants.js'
import { longTermNonce, readCounter, shortTermNonce } from './nonces.js'
import {
  decodeCookie,
  decodeCookieInner,
  decodeHello,
  decodeInitiate,
  decodeInitiateInner,
  encodeCookie,
  encodeCookieInner,
  encodeHello,
  encodeInitiate,
  encodeInitiateInner,
  type PacketLimits
} from './packets.js'
import { Session } from './session.js'

export type AuthMode = 'signid' | 'none'

export const AUTH_VERSION = 1
/** version(1) + signId(32) + signature(64). */
export const AUTH_BYTES = 97
const AUTH_CONTEXT = Buffer.from('mm-platform/curvecp/initiate/v1', 'latin1')
const ZERO_EXTENSION = Buffer.alloc(EXTENSION_BYTES)
const ZERO_64 = Buffer.alloc(64)

function authMessage(clientShortTerm: Uint8Array, serverShortTerm: Uint8Array, serverLongTerm: Uint8Array): Buffer {
  return Buffer.concat([AUTH_CONTEXT, clientShortTerm, serverShortTerm, serverLongTerm])
}

/** A DNS name in CurveCP's 256-byte form (length-prefixed labels, zero padded). */
export function encodeDomainName(name: string): Buffer {
  const out = Buffer.alloc(DOMAIN_NAME_BYTES)
  let at = 0
  for (const label of name.split('.').filter((l) => l.length > 0)) {
    const bytes = Buffer.from(label, 'latin1')
    if (bytes.length > 63 || at + 1 + bytes.length >= DOMAIN_NAME_BYTES) throw new InvalidArgumentError(`domain name too long: ${name}`)
    out[at++] = bytes.length
    bytes.copy(out, at)
    at += bytes.length
  }
  return out
}

// ------------------------------------------------------------------------------------------------
// Client
// ------------------------------------------------------------------------------------------------

export type ClientState = 'new' | 'hello-sent' | 'initiate-sent' | 'established' | 'failed'

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
    this.shortTerm = boxKeyPair()
    const k = boxBeforeNm(this.serverLongTermKey, this.shortTerm.secretKey)
    if (!k) throw new InvalidArgumentError('the server key is a low-order point')
    this.helloKey = k
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
    return this.initiate(message)
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

function padTo16(m: Buffer): Buffer {
  const len = Math.max(16, Math.ceil(m.length / 16) * 16)
  if (len === m.length) return m
  const out = Buffer.alloc(len)
  m.copy(out)
  return out
}

// ------------------------------------------------------------------------------------------------
// Server
// ------------------------------------------------------------------------------------------------

export interface ServerHandshakeOptions {
  identity: IdentityLike
  limits: PacketLimits
  auth: AuthMode
  serverExtension?: Buffer
  /** Clock, injectable for tests. */
  now?: () => number
  minuteKeyRotationMs?: number
  /** Used cookies remembered per minute key (default MAX_REMEMBERED_COOKIES); an Initiate past
   * it is dropped as 'cookie-cache-full'. Lowered by tests. */
  maxRememberedCookies?: number
}

/** What a valid Initiate yields. */
export interface AcceptedInitiate {
  session: Session
  /** The client's long-term key C (its boxId). */
  clientLongTermKey: Buffer
  /** The client's signId (base64) when auth is 'signid'. */
  clientSignId: string | undefined
  /** The Initiate's message after the auth extension. */
  message: Buffer
  /** The server's short-term public key S' chosen for this client. */
  serverShortTermKey: Buffer
  /** The server's domain name as the client sent it (256 bytes, curvecp.org/addressing.html). */
  domainName: Buffer
}

/** Why the server dropped a packet; counted in {@link ServerHandshake.drops}. */
export type ServerDropReason = 'malformed' | 'wrong-extension' | 'bad-hello' | 'bad-cookie' | 'replayed-cookie' | 'bad-initiate' | 'bad-vouch' | 'bad-auth' | 'cookie-cache-full'

/**
 * The server side. Holds only the minute keys and the set of cookies already used; nothing per
 * client until an Initiate proves itself.
 */
export class ServerHandshake {
  readonly drops: Record<ServerDropReason, number> = {
    malformed: 0,
    'wrong-extension': 0,
    'bad-hello': 0,
    'bad-cookie': 0,
    'replayed-cookie': 0,
    'bad-initiate': 0,
    'bad-vouch': 0,
    'bad-auth': 0,
    'cookie-cache-full': 0
  }
  private readonly identity: IdentityLike
  private readonly limits: PacketLimits
  private readonly auth: AuthMode
  private readonly serverExtension: Buffer
  private readonly now: () => number
  private readonly rotationMs: number
  private readonly maxRememberedCookies: number
  private minuteKey: Buffer
  private previousMinuteKey: Buffer | undefined
  private rotatedAt: number
  private closed = false
  /** Cookie nonces accepted under the current / previous minute key. */
  private usedCookies = new Set<string>()
  private previousUsedCookies = new Set<string>()

  constructor(options: ServerHandshakeOptions) {
    this.identity = options.identity
    this.limits = options.limits
    this.auth = options.auth
    this.serverExtension = options.serverExtension ?? ZERO_EXTENSION
    this.now = options.now ?? Date.now
    this.rotationMs = options.minuteKeyRotationMs ?? MINUTE_KEY_ROTATION_MS
    this.maxRememberedCookies = options.maxRememberedCookies ?? MAX_REMEMBERED_COOKIES
    this.minuteKey = randomBytes(32)
    this.rotatedAt = this.now()
  }

  /** Rotates the minute key when due; the previous one is still accepted until the next rotation. */
  private rotate(): void {
    const now = this.now()
    if (now - this.rotatedAt < this.rotationMs) return
    if (this.previousMinuteKey) wipe(this.previousMinuteKey)
    if (now - this.rotatedAt >= 2 * this.rotationMs) {
      // Idle for two periods: both keys are stale.
      wipe(this.minuteKey)
      this.previousMinuteKey = undefined
      this.previousUsedCookies = new Set()
    } else {
      this.previousMinuteKey = this.minuteKey
      this.previousUsedCookies = this.usedCookies
    }
    this.minuteKey = randomBytes(32)
    this.usedCookies = new Set()
    this.rotatedAt = now
  }

  /** Answers a Hello with a Cookie packet, or null (dropped: malformed, wrong server, forged). */
  handleHello(packet: Uint8Array): Buffer | null {
    if (this.closed) return null
    this.rotate()
    let hello
    try {
      hello = decodeHello(packet)
    } catch {
      this.drops.malformed++
      return null
    }
    if (!hello.serverExtension.equals(this.serverExtension)) {
      this.drops['wrong-extension']++
      return null
    }
    const k = this.identity.boxBeforeNm(hello.clientShortTermKey)
    if (!k) {
      this.drops['bad-hello']++
      return null
    }
    const zeros = secretboxOpen(hello.box, shortTermNonceOf(NONCE_CLIENT_HELLO, hello.nonce), k)
    if (!zeros || !zeros.equals(ZERO_64)) {
      wipe(k)
      this.drops['bad-hello']++
      return null
    }
    const shortTerm = boxKeyPair()
    const cookieNonce = randomBytes(16)
    const sealed = secretbox(
      Buffer.concat([hello.clientShortTermKey, shortTerm.secretKey]),
      longTermNonce(NONCE_MINUTE_KEY, cookieNonce),
      this.minuteKey
    )
    wipe(shortTerm.secretKey)
    const cookie = Buffer.concat([cookieNonce, sealed])
    const boxNonce = randomBytes(16)
    const box = secretbox(encodeCookieInner({ serverShortTermKey: shortTerm.publicKey, cookie }), longTermNonce(NONCE_COOKIE, boxNonce), k)
    wipe(k)
    return encodeCookie({ clientExtension: hello.clientExtension, serverExtension: this.serverExtension, nonce: boxNonce, box })
  }

  /** Checks an Initiate; returns the new session, or null (dropped, counted by reason). */
  handleInitiate(packet: Uint8Array): AcceptedInitiate | null {
    if (this.closed) return null
    this.rotate()
    let init
    try {
      init = decodeInitiate(packet, this.limits)
    } catch {
      this.drops.malformed++
      return null
    }
    if (!init.serverExtension.equals(this.serverExtension)) {
      this.drops['wrong-extension']++
      return null
    }
    // The cookie: C' || s' sealed under the current or the previous minute key.
    const cookieNonce = init.cookie.subarray(0, 16)
    const cookieBox = init.cookie.subarray(16, COOKIE_BYTES)
    const minuteNonce = longTermNonce(NONCE_MINUTE_KEY, cookieNonce)
    let generation: Set<string> = this.usedCookies
    let opened = secretboxOpen(cookieBox, minuteNonce, this.minuteKey)
    if (!opened && this.previousMinuteKey) {
      opened = secretboxOpen(cookieBox, minuteNonce, this.previousMinuteKey)
      generation = this.previousUsedCookies
    }
    if (!opened || !equalBytes(opened.subarray(0, KEY_BYTES), init.clientShortTermKey)) {
      if (opened) wipe(opened)
      this.drops['bad-cookie']++
      return null
    }
    const cookieId = cookieNonce.toString('base64')
    if (this.usedCookies.has(cookieId) || this.previousUsedCookies.has(cookieId)) {
      wipe(opened)
      this.drops['replayed-cookie']++
      return null
    }
    const serverShortTermSecret = opened.subarray(KEY_BYTES, 2 * KEY_BYTES)
    const sessionKey = boxBeforeNm(init.clientShortTermKey, serverShortTermSecret)
    const serverShortTermKey = boxPublicFromSecret(serverShortTermSecret)
    wipe(opened)
    if (!sessionKey) {
      this.drops['bad-initiate']++
      return null
    }
    const initiateCounter = readCounter(init.nonce, 0)
    const plain = secretboxOpen(init.box, shortTermNonceOf(NONCE_CLIENT_INITIATE, init.nonce), sessionKey)
    if (!plain) {
      wipe(sessionKey)
      this.drops['bad-initiate']++
      return null
    }
    const inner = decodeInitiateInner(plain)
    const vouchKey = longTermKey(this.identity, inner.clientLongTermKey)
    const vouched = vouchKey ? secretboxOpen(inner.vouch, longTermNonce(NONCE_VOUCH, inner.vouchNonce), vouchKey) : null
    if (vouchKey) wipe(vouchKey)
    if (!vouched || !equalBytes(vouched, init.clientShortTermKey)) {
      wipe(sessionKey)
      this.drops['bad-vouch']++
      return null
    }
    let message = inner.message
    let clientSignId: string | undefined
    if (this.auth === 'signid') {
      const ok = message.length >= AUTH_BYTES && message[0] === AUTH_VERSION
      const signId = ok ? message.subarray(1, 33) : undefined
      const signature = ok ? message.subarray(33, AUTH_BYTES) : undefined
      const derived = signId ? signPublicToBoxPublic(signId) : null
      const serverLongTerm = Buffer.from(this.identity.getBoxId(), 'base64')
      if (
        !signId ||
        !signature ||
        !derived ||
        !equalBytes(derived, inner.clientLongTermKey) ||
        !verify(signature, authMessage(init.clientShortTermKey, serverShortTermKey, serverLongTerm), signId)
      ) {
        wipe(sessionKey)
        this.drops['bad-auth']++
        return null
      }
      clientSignId = formatId(signId)
      message = message.subarray(AUTH_BYTES)
    }
    if (generation.size >= this.maxRememberedCookies) {
      wipe(sessionKey)
      this.drops['cookie-cache-full']++
      return null
    }
    generation.add(cookieId)
    const session = new Session({
      role: 'server',
      sharedKey: sessionKey,
      clientShortTermKey: Buffer.from(init.clientShortTermKey),
      clientExtension: Buffer.from(init.clientExtension),
      serverExtension: this.serverExtension,
      nextSendCounter: 1,
      lastReceivedCounter: initiateCounter,
      limits: this.limits
    })
    return {
      session,
      clientLongTermKey: Buffer.from(inner.clientLongTermKey),
      clientSignId,
      message: Buffer.from(message),
      serverShortTermKey,
      domainName: Buffer.from(inner.domainName)
    }
  }

  /** Total dropped packets. */
  get dropped(): number {
    let n = 0
    for (const v of Object.values(this.drops)) n += v
    return n
  }

  /** Forgets the minute keys; every later packet is refused. */
  close(): void {
    this.closed = true
    wipe(this.minuteKey)
    if (this.previousMinuteKey) wipe(this.previousMinuteKey)
    this.usedCookies.clear()
    this.previousUsedCookies.clear()
  }
}

/** beforenm with a peer's long-term key, cached by the identity when it can. */
function longTermKey(identity: IdentityLike, theirs: Uint8Array): Buffer | null {
  return identity.longTermSharedKey ? identity.longTermSharedKey(theirs) : identity.boxBeforeNm(theirs)
}

function shortTermNonceOf(prefix: Buffer, counterBytes: Buffer): Buffer {
  const n = Buffer.allocUnsafe(24)
  prefix.copy(n, 0, 0, 16)
  counterBytes.copy(n, 16, 0, 8)
  return n
}
