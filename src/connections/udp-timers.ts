/**
 * The UDP channel's own timers (udp-channel.ts), apart from its linger/time-wait deadline:
 * UDP has no connection below it, so the channel resends its Hello until a Cookie comes, and
 * watches for a peer that died without a word.
 */
import type { StreamClock } from '../curvecp/message-stream.js'

/**
 * Calls `send` now and again after `firstMs`, each wait 1.5 times the one before plus up to as
 * much again at random (so that many clients do not retry in step), while `send` says true.
 */
export class RetryBackoff {
  private waitMs = 0
  private timer: unknown

  constructor(
    private readonly clock: StreamClock,
    private readonly firstMs: number,
    private readonly send: () => boolean
  ) {}

  start(): void {
    if (!this.send()) return
    this.waitMs = this.waitMs ? this.waitMs * 1.5 : this.firstMs
    const wait = this.waitMs + Math.random() * this.waitMs
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined
      this.start()
    }, wait)
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
  }
}

/**
 * One timer for a peer's liveness: `silent()` after keepaliveMs without hearing from it (the
 * channel pings), `dead()` after deadAfterMs (the channel closes with ERR_TIMEOUT).
 */
export class UdpLiveness {
  private lastHeardAt: number
  private timer: unknown

  constructor(
    private readonly clock: StreamClock,
    private readonly keepaliveMs: number,
    private readonly deadAfterMs: number,
    private readonly on: { silent(): void; dead(): void }
  ) {
    this.lastHeardAt = clock.now()
  }

  /** An authenticated packet arrived (at `now`, when the caller has read the clock). */
  heard(now = this.clock.now()): void {
    this.lastHeardAt = now
  }

  start(): void {
    const now = this.clock.now()
    const pingAt = this.lastHeardAt + this.keepaliveMs
    const deadAt = this.lastHeardAt + this.deadAfterMs
    const at = pingAt > now ? pingAt : Math.min(deadAt, now + this.keepaliveMs)
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined
      const t = this.clock.now()
      if (t - this.lastHeardAt >= this.deadAfterMs) return this.on.dead()
      if (t - this.lastHeardAt >= this.keepaliveMs) this.on.silent()
      this.start()
    }, Math.max(1, at - now))
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
  }
}
