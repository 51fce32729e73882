/**
 * Handshake admission: before any authentication, a connection or a Hello/Initiate costs us
 * memory and public-key work, so both are bounded per source address and in all.
 *
 * - Concurrency (TCP: accepted connections not yet authenticated): at most `perAddress` from one
 *   address (more are closed at once) and `global` in all; when the global bound is reached the
 *   oldest handshake under way is closed to make room (like a SYN cache), so that a flood of
 *   silent connections from many addresses cannot keep a legitimate peer out for long.
 * - Rate (TCP connections, UDP Hellos and new-session Initiates): a token bucket per address and
 *   one in all; past either the attempt is refused (TCP: closed; UDP: dropped before crypto).
 *
 * The per-address table is bounded: entries with nothing under way are forgotten first.
 * Token buckets are a few lines here (no state beyond two numbers; a library would add more).
 */
import type { RefusalCounts } from './counters.js'

export interface AdmissionLimits {
  /** Handshakes under way from one address. */
  perAddress: number
  /** Handshakes under way in all (the oldest is closed past this). */
  global: number
  /** New handshakes per second from one address (bucket of twice this). */
  ratePerAddress: number
  /** New handshakes per second in all (bucket of twice this). */
  rateGlobal: number
}

export const DEFAULT_ADMISSION: Readonly<AdmissionLimits> = { perAddress: 8, global: 256, ratePerAddress: 20, rateGlobal: 500 }
/** Addresses remembered at most (their concurrency and rate). */
export const MAX_TRACKED_ADDRESSES = 16_384

class Bucket {
  tokens: number
  at: number
  constructor(readonly rate: number, now: number) {
    this.tokens = rate * 2
    this.at = now
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.rate * 2, this.tokens + ((now - this.at) / 1000) * this.rate)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
  full(now: number): boolean {
    return this.tokens + ((now - this.at) / 1000) * this.rate >= this.rate * 2
  }
}

interface AddressState {
  underWay: number
  bucket: Bucket
}

export class HandshakeAdmission {
  readonly limits: AdmissionLimits
  private readonly counts: RefusalCounts
  private readonly now: () => number
  private readonly addresses = new Map<string, AddressState>()
  private readonly global: Bucket
  /** Handshakes under way, oldest first, with how to abort each. */
  private readonly underWay = new Map<object, { address: string; abort: () => void }>()

  constructor(limits: Partial<AdmissionLimits> | undefined, counts: RefusalCounts, now: () => number = Date.now) {
    this.limits = { ...DEFAULT_ADMISSION, ...limits }
    this.counts = counts
    this.now = now
    this.global = new Bucket(this.limits.rateGlobal, now())
  }

  /** Handshakes under way now. */
  get active(): number {
    return this.underWay.size
  }

  /**
   * A rate-limited attempt from `address` (a UDP Hello or new Initiate, or a TCP connection via
   * begin()). False: refuse it (counted).
   */
  allow(address: string): boolean {
    const now = this.now()
    const state = this.state(address, now)
    if (!state.bucket.take(now)) return void this.counts.handshakeRatePerAddress++, false
    if (!this.global.take(now)) return void this.counts.handshakeRateGlobal++, false
    return true
  }

  /**
   * A TCP connection from `address` starts its handshake; `key` identifies it, `abort` closes it.
   * False: refuse it (counted; the caller closes it). Otherwise call end(key) when it settles.
   */
  begin(key: object, address: string, abort: () => void): boolean {
    const now = this.now()
    const state = this.state(address, now)
    if (state.underWay >= this.limits.perAddress) return void this.counts.handshakeConcurrentPerAddress++, false
    if (!this.allow(address)) return false
    if (this.underWay.size >= this.limits.global) {
      // Make room: the oldest handshake under way goes (it had the longest to finish).
      const [oldestKey, oldest] = this.underWay.entries().next().value as [object, { address: string; abort: () => void }]
      this.counts.handshakeConcurrentGlobal++
      this.end(oldestKey)
      oldest.abort()
    }
    state.underWay++
    this.underWay.set(key, { address, abort })
    return true
  }

  /** The handshake `key` settled (authenticated, failed or closed). Idempotent. */
  end(key: object): void {
    const entry = this.underWay.get(key)
    if (!entry) return
    this.underWay.delete(key)
    const state = this.addresses.get(entry.address)
    if (state) state.underWay--
  }

  private state(address: string, now: number): AddressState {
    let state = this.addresses.get(address)
    if (state) return state
    if (this.addresses.size >= MAX_TRACKED_ADDRESSES) this.prune(now)
    state = { underWay: 0, bucket: new Bucket(this.limits.ratePerAddress, now) }
    this.addresses.set(address, state)
    return state
  }

  /** Forgets addresses with nothing under way, refilled ones first, then any such. */
  private prune(now: number): void {
    for (const [a, s] of this.addresses) if (s.underWay === 0 && s.bucket.full(now)) this.addresses.delete(a)
    if (this.addresses.size < MAX_TRACKED_ADDRESSES) return
    for (const [a, s] of this.addresses) {
      if (s.underWay === 0) this.addresses.delete(a)
      if (this.addresses.size < MAX_TRACKED_ADDRESSES / 2) return
    }
  }
}

/** The address part of `tcp:1.2.3.4:5678` / `udp:...` (IPv6 addresses keep their colons). */
export function addressOf(remote: string): string {
  const first = remote.indexOf(':')
  const last = remote.lastIndexOf(':')
  return first >= 0 && last > first ? remote.slice(first + 1, last) : remote
}
