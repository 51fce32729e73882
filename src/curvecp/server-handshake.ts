/**
 * The server side of the CurveCP handshake (curvecp.org/packets.html); the exchange as a whole
 * is drawn in handshake.ts. Stateless until an Initiate proves itself: a Hello is answered with a
 * Cookie sealed under the minute key (minute-keys.ts), and nothing is kept per client.
 *
 * An Initiate is checked cheapest first, so a forgery costs us as little as possible: decode,
 * extensions, the cookie (one secretbox), replay of the cookie, and then the cookie is marked used
 * BEFORE the public-key work (two X25519: the session key and S'), so one valid cookie buys an
 * attacker at most one such attempt. Then the box, the vouch, and the auth extension.
 *
 * Work done ahead, between packets, so that it is off the handshake's path (the server is idle
 * while the client makes its Initiate): the next S' key pair, and the session key beforenm(C', s')
 * of the last Cookie of a turn (see precomputeSessionKey). Both at most once per turn, however
 * many Hellos it had, so a Hello flood costs what it did plus at most two X25519 per turn.
 */
import { boxBeforeNm, boxKeyPair, boxPublicFromSecret, equalBytes, randomBytes, secretbox, secretboxOpen, signPublicToBoxPublic, verify, wipe, type KeyPair } from '../crypto/sodium.js'
import type { IdentityLike } from '../identity/identity.js'
import { formatId } from '../identity/ids.js'
import { KEY_BYTES, NONCE_CLIENT_HELLO, NONCE_CLIENT_INITIATE, NONCE_COOKIE, NONCE_VOUCH } from './constants.js'
import { AUTH_BYTES, AUTH_VERSION, ZERO_64, ZERO_EXTENSION, authMessage, longTermKey, shortTermNonceOf, type AuthMode } from './handshake-common.js'
import { MinuteKeys } from './minute-keys.js'
import { longTermNonce, readCounter } from './nonces.js'
import { decodeHello, decodeInitiate, decodeInitiateInner, encodeCookie, encodeCookieInner, type PacketLimits } from './packets.js'
import { Session } from './session.js'

export interface ServerHandshakeOptions {
  identity: IdentityLike
  limits: PacketLimits
  auth: AuthMode
  serverExtension?: Buffer
  /** Clock, injectable for tests. */
  now?: () => number
  /** Minute key period (default MINUTE_KEY_ROTATION_MS, 60 s); rotated by a timer, released by close(). */
  minuteKeyRotationMs?: number
  /** Most used cookies remembered per minute key (default MAX_REMEMBERED_COOKIES); past it, new Initiates are refused. */
  maxRememberedCookies?: number
}

/** S' remembered from Hellos for their Initiates: 128 handshakes under way (about 20 KiB). */
export const MAX_CACHED_SHORT_TERM_KEYS = 128
/** Session keys made ahead for Initiates to come (secrets: few, wiped when dropped). */
export const MAX_PRECOMPUTED_SESSION_KEYS = 16

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
 * The server side. Holds only the minute keys, the set of cookies already used and (bounded,
 * public) the S' of recent Cookies; nothing else per client until an Initiate proves itself.
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
  private readonly minuteKeys: MinuteKeys
  private closed = false
  /**
   * S' by cookie id (its random nonce), both as latin1 text (the smallest form: ~18 KiB when
   * full), from the Hello: a valid Initiate then need not compute S' from the s' in its cookie
   * (an X25519 base multiplication, ~50 µs on the handshake's path). Public keys only; at most
   * MAX_CACHED_SHORT_TERM_KEYS, the oldest dropped (a Hello flood only makes Initiates compute S'
   * as before). A cookie's id is unique and only we seal cookies, so the S' found is the one of
   * the cookie's s'.
   */
  private readonly shortTermKeys = new Map<string, string>()
  /** A short-term key pair made ahead, between packets, for the next Hello (see spareKeyPair). */
  private spare: KeyPair | undefined
  private refilling = false
  /**
   * beforenm(C', s') by cookie id, made after the Cookie went out (precomputeSessionKey): the
   * Initiate that carries the cookie, once its checks up to the public-key work passed, takes it
   * instead of computing it (an X25519, ~35 µs on the handshake's path). At most
   * MAX_PRECOMPUTED_SESSION_KEYS, the oldest wiped; all wiped when the minute key rotates (they
   * must not outlive the cookies' s', forward secrecy) and on close.
   */
  private readonly sessionKeys = new Map<string, Buffer>()
  /** The turn's last Cookie whose session key is to be made after the turn (its s' kept until then). */
  private toPrecompute: { id: string; clientShortTermKey: Buffer; secret: Buffer } | undefined
  private precomputing = false

  constructor(options: ServerHandshakeOptions) {
    this.identity = options.identity
    this.limits = options.limits
    this.auth = options.auth
    this.serverExtension = options.serverExtension ?? ZERO_EXTENSION
    this.minuteKeys = new MinuteKeys({
      rotationMs: options.minuteKeyRotationMs,
      now: options.now,
      maxRememberedCookies: options.maxRememberedCookies,
      onRotate: () => this.forgetSessionKeys()
    })
  }

  /** Minute key rotations so far (the timer rotates even when no packet arrives). */
  get minuteKeyRotations(): number {
    return this.minuteKeys.rotations
  }

  /** Answers a Hello with a Cookie packet, or null (dropped: malformed, wrong server, forged). */
  handleHello(packet: Uint8Array): Buffer | null {
    if (this.closed) return null
    this.minuteKeys.rotateIfDue()
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
    const shortTerm = this.spareKeyPair()
    const cookie = this.minuteKeys.seal(hello.clientShortTermKey, shortTerm.secretKey)
    const id = cookie.toString('latin1', 0, 16)
    this.precomputeSessionKey(id, hello.clientShortTermKey, shortTerm.secretKey)
    if (this.shortTermKeys.size >= MAX_CACHED_SHORT_TERM_KEYS) this.shortTermKeys.delete(this.shortTermKeys.keys().next().value as string)
    this.shortTermKeys.set(id, shortTerm.publicKey.toString('latin1'))
    const boxNonce = randomBytes(16)
    const box = secretbox(encodeCookieInner({ serverShortTermKey: shortTerm.publicKey, cookie }), longTermNonce(NONCE_COOKIE, boxNonce), k)
    wipe(k)
    return encodeCookie({ clientExtension: hello.clientExtension, serverExtension: this.serverExtension, nonce: boxNonce, box })
  }

  /** Checks an Initiate; returns the new session, or null (dropped, counted by reason). */
  handleInitiate(packet: Uint8Array): AcceptedInitiate | null {
    if (this.closed) return null
    this.minuteKeys.rotateIfDue()
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
    const cookie = this.minuteKeys.open(init.cookie, init.clientShortTermKey)
    if (typeof cookie === 'string') {
      this.drops[cookie]++
      return null
    }
    // Used from here on, whatever follows: a forged box riding this cookie is refused once, and
    // every further Initiate with it costs one secretbox, no X25519.
    this.minuteKeys.markUsed(cookie)
    const opened = cookie.plain
    const serverShortTermSecret = opened.subarray(KEY_BYTES, 2 * KEY_BYTES)
    const id = init.cookie.toString('latin1', 0, 16)
    // A cookie's id is unique and only we seal cookies, and the cookie was made for this C'
    // (checked by open()): the key made ahead for this id is beforenm(C', s') of this cookie.
    const ahead = this.sessionKeys.get(id)
    if (ahead) this.sessionKeys.delete(id)
    else if (this.toPrecompute?.id === id) this.dropPrecompute()
    const sessionKey = ahead ?? boxBeforeNm(init.clientShortTermKey, serverShortTermSecret)
    const cached = this.shortTermKeys.get(id)
    if (cached !== undefined) this.shortTermKeys.delete(id)
    const serverShortTermKey = cached !== undefined ? Buffer.from(cached, 'latin1') : boxPublicFromSecret(serverShortTermSecret)
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

  /** S' kept for Initiates to come (tests: the bound holds). */
  get cachedShortTermKeys(): number {
    return this.shortTermKeys.size
  }

  /**
   * The short-term key pair for a Hello: the one made ahead if there is one, else a new one. A
   * new spare is made after the current turn (once per turn, however many Hellos it had), so the
   * key generation (~40 µs) is mostly off the handshake's path; under a flood the cost per Hello
   * is what it was. Each pair serves one Hello only.
   */
  private spareKeyPair(): KeyPair {
    const pair = this.spare ?? boxKeyPair()
    this.spare = undefined
    if (!this.refilling) {
      this.refilling = true
      setImmediate(() => {
        this.refilling = false
        if (!this.closed && !this.spare) this.spare = boxKeyPair()
      })
    }
    return pair
  }

  /**
   * Keeps s' of the Cookie just made until the turn is over, then makes beforenm(C', s') for its
   * Initiate and wipes s'. Only the turn's last Cookie is kept so (an earlier one's s' is wiped
   * now): at most one X25519 per turn.
   */
  private precomputeSessionKey(id: string, clientShortTermKey: Buffer, secret: Buffer): void {
    this.dropPrecompute()
    this.toPrecompute = { id, clientShortTermKey: Buffer.from(clientShortTermKey), secret }
    if (this.precomputing) return
    this.precomputing = true
    setImmediate(() => {
      this.precomputing = false
      const next = this.toPrecompute
      this.toPrecompute = undefined
      if (!next) return
      const key = this.closed ? null : boxBeforeNm(next.clientShortTermKey, next.secret)
      wipe(next.secret)
      if (!key) return
      if (this.sessionKeys.size >= MAX_PRECOMPUTED_SESSION_KEYS) {
        const oldest = this.sessionKeys.keys().next().value as string
        wipe(this.sessionKeys.get(oldest) as Buffer)
        this.sessionKeys.delete(oldest)
      }
      this.sessionKeys.set(next.id, key)
    })
  }

  private dropPrecompute(): void {
    if (this.toPrecompute) wipe(this.toPrecompute.secret)
    this.toPrecompute = undefined
  }

  /** Wipes the session keys made ahead (minute key rotated, or closing). */
  private forgetSessionKeys(): void {
    this.dropPrecompute()
    for (const key of this.sessionKeys.values()) wipe(key)
    this.sessionKeys.clear()
  }

  /** Session keys made ahead and not yet used (tests: the bound holds, rotation forgets them). */
  get precomputedSessionKeys(): number {
    return this.sessionKeys.size + (this.toPrecompute ? 1 : 0)
  }

  /** Forgets the minute keys and stops their timer; every later packet is refused. Idempotent. */
  close(): void {
    this.closed = true
    this.minuteKeys.close()
    this.forgetSessionKeys()
    this.shortTermKeys.clear()
    if (this.spare) wipe(this.spare.secretKey)
    this.spare = undefined
  }
}
