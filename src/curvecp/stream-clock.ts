/**
 * Time and the one timer of a CurveCP message stream, injectable so that tests run on virtual
 * time (test/helpers/udp-virtual.ts). Times are milliseconds.
 */

/** Time and timers, injectable (tests run on virtual time). Times are milliseconds. */
export interface StreamClock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  /** Runs `fn` after pending I/O (setImmediate in Node). */
  setImmediate(fn: () => void): void
}

/** The real clock: performance.now(), unref'd timers, setImmediate. */
export const systemClock: StreamClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref()
    return t
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setImmediate: (fn) => {
    setImmediate(fn)
  }
}

/**
 * One timer that only ever moves earlier: arming it for a later time than it is set for does
 * nothing (the stream re-arms after every expiry and acknowledgement, so a later deadline is
 * picked up then). Cleared by clear(); fires `expired` once.
 */
export class DeadlineTimer {
  /** When it fires (Infinity: not armed). */
  at = Infinity
  private handle: unknown
  private readonly clock: StreamClock
  private readonly expired: () => void

  constructor(clock: StreamClock, expired: () => void) {
    this.clock = clock
    this.expired = expired
  }

  /** Fires at `at` (clock time) unless already armed for that time or earlier. */
  arm(at: number, now: number): void {
    if (at >= this.at) return
    this.clear()
    this.at = at
    this.handle = this.clock.setTimeout(() => {
      this.handle = undefined
      this.at = Infinity
      this.expired()
    }, Math.max(0, at - now))
  }

  clear(): void {
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle)
    this.handle = undefined
    this.at = Infinity
  }
}
