/**
 * The server's minute keys and cookies (curvecp.org/packets.html, "minute key").
 *
 * A Cookie K = nonce(16) || secretbox[minute key](C' || s'): the server keeps no state per client
 * until an Initiate comes back with K. The minute key rotates every `rotationMs` on a timer (so an
 * idle server forgets its old keys too: forward secrecy of the short-term secrets sealed in
 * cookies), and the previous key is still accepted until the next rotation. Cookies already used
 * under the current and previous keys are remembered, bounded, to refuse a replayed Initiate.
 */
import { randomBytes, secretbox, secretboxOpen, wipe } from '../crypto/sodium.js'
import { COOKIE_BYTES, KEY_BYTES, MAX_REMEMBERED_COOKIES, MINUTE_KEY_ROTATION_MS, NONCE_MINUTE_KEY } from './constants.js'
import { longTermNonce } from './nonces.js'

export interface MinuteKeysOptions {
  rotationMs?: number
  /** Clock, injectable for tests. */
  now?: () => number
  /** Most cookies remembered per generation (default {@link MAX_REMEMBERED_COOKIES}). */
  maxRememberedCookies?: number
  /** Called after each rotation (the server forgets what it derived from older cookies). */
  onRotate?: () => void
}

/** What opening a cookie yields: C' || s' (64 bytes, the caller wipes it) and its id. */
export interface OpenedCookie {
  plain: Buffer
  /** base64 of the cookie's nonce: the id remembered once the cookie is used. */
  id: string
  generation: Set<string>
}

export type CookieCheck = OpenedCookie | 'bad-cookie' | 'replayed-cookie' | 'cookie-cache-full'

export class MinuteKeys {
  /** Rotations so far (by the timer or on a packet after an idle period). */
  rotations = 0
  private readonly rotationMs: number
  private readonly now: () => number
  private readonly maxRemembered: number
  private key: Buffer
  private previousKey: Buffer | undefined
  private rotatedAt: number
  /** Cookie ids used under the current / previous minute key. */
  private used = new Set<string>()
  private previousUsed = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private readonly onRotate: (() => void) | undefined

  constructor(options: MinuteKeysOptions = {}) {
    this.onRotate = options.onRotate
    this.rotationMs = options.rotationMs ?? MINUTE_KEY_ROTATION_MS
    this.now = options.now ?? Date.now
    this.maxRemembered = options.maxRememberedCookies ?? MAX_REMEMBERED_COOKIES
    this.key = randomBytes(32)
    this.rotatedAt = this.now()
    this.schedule()
  }

  /**
   * Rotates when due; called on every packet too, so an injected clock (tests) or a timer that
   * runs late cannot leave a key in use past its period.
   */
  rotateIfDue(): void {
    if (this.closed) return
    const now = this.now()
    const elapsed = now - this.rotatedAt
    if (elapsed < this.rotationMs) return
    if (this.previousKey) wipe(this.previousKey)
    if (elapsed >= 2 * this.rotationMs) {
      // Idle for two periods: both keys are stale.
      wipe(this.key)
      this.previousKey = undefined
      this.previousUsed = new Set()
    } else {
      this.previousKey = this.key
      this.previousUsed = this.used
    }
    this.key = randomBytes(32)
    this.used = new Set()
    this.rotatedAt = now
    this.rotations++
    this.schedule()
    this.onRotate?.()
  }

  /** The cookie for a client short-term key C' and our short-term secret s'. */
  seal(clientShortTermKey: Uint8Array, serverShortTermSecret: Uint8Array): Buffer {
    const nonce = randomBytes(16)
    const sealed = secretbox(Buffer.concat([clientShortTermKey, serverShortTermSecret]), longTermNonce(NONCE_MINUTE_KEY, nonce), this.key)
    return Buffer.concat([nonce, sealed])
  }

  /**
   * Opens a cookie under the current or previous key and checks it was made for C'. Cheap (one
   * secretbox): done before any public-key work on an Initiate.
   */
  open(cookie: Buffer, clientShortTermKey: Uint8Array): CookieCheck {
    const nonce = cookie.subarray(0, 16)
    const box = cookie.subarray(16, COOKIE_BYTES)
    const minuteNonce = longTermNonce(NONCE_MINUTE_KEY, nonce)
    let generation = this.used
    let plain = this.closed ? null : secretboxOpen(box, minuteNonce, this.key)
    if (!plain && this.previousKey) {
      plain = secretboxOpen(box, minuteNonce, this.previousKey)
      generation = this.previousUsed
    }
    if (!plain || !Buffer.from(clientShortTermKey).equals(plain.subarray(0, KEY_BYTES))) {
      if (plain) wipe(plain)
      return 'bad-cookie'
    }
    const id = nonce.toString('base64')
    if (this.used.has(id) || this.previousUsed.has(id)) {
      wipe(plain)
      return 'replayed-cookie'
    }
    if (generation.size >= this.maxRemembered) {
      wipe(plain)
      return 'cookie-cache-full'
    }
    return { plain, id, generation }
  }

  /** Marks a cookie used: an Initiate carrying it again is refused until its key is forgotten. */
  markUsed(cookie: OpenedCookie): void {
    cookie.generation.add(cookie.id)
  }

  /** Forgets both keys and stops the timer. Idempotent. */
  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    wipe(this.key)
    if (this.previousKey) wipe(this.previousKey)
    this.used.clear()
    this.previousUsed.clear()
  }

  /** Arms the rotation timer for the end of the current period (unref'd: it never keeps node up). */
  private schedule(): void {
    if (this.closed) return
    if (this.timer) clearTimeout(this.timer)
    const delay = Math.max(1, Math.min(this.rotationMs, this.rotatedAt + this.rotationMs - this.now()))
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.rotateIfDue()
      if (!this.timer) this.schedule() // fired a little early: try again at the period's end
    }, delay)
    this.timer.unref()
  }
}
