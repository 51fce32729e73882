/**
 * Virtual time for the message stream: a clock whose timers run when the test advances it, and
 * an in-memory link between two streams with a delay, jitter and seeded loss.
 */
import type { StreamClock } from '../../src/curvecp/message-stream.js'

/** A small seeded PRNG (mulberry32): the same seed gives the same losses. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Timer {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

const realImmediate = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export class VirtualClock implements StreamClock {
  t = 0
  private seq = 0
  private timers: Timer[] = []
  private immediates: Array<() => void> = []

  now(): number {
    return this.t
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    // Insert in (at, seq) order.
    let i = this.timers.length
    while (i > 0 && (this.timers[i - 1] as Timer).at > timer.at) i--
    this.timers.splice(i, 0, timer)
    return timer
  }

  clearTimeout(handle: unknown): void {
    if (handle) (handle as Timer).cancelled = true
  }

  setImmediate(fn: () => void): void {
    this.immediates.push(fn)
  }

  /** Timers not yet run (cancelled ones excluded). */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length
  }

  /**
   * Runs microtasks, immediates and timers in order until `done()` or `maxMs` of virtual time
   * passed. Returns the virtual time used.
   */
  async run(done: () => boolean, maxMs: number): Promise<number> {
    const start = this.t
    for (;;) {
      await realImmediate()
      if (this.immediates.length) {
        const batch = this.immediates.splice(0)
        for (const fn of batch) fn()
        continue
      }
      if (done()) return this.t - start
      const next = this.timers.shift()
      if (!next) return this.t - start
      if (next.cancelled) continue
      if (next.at - start > maxMs) {
        this.timers.unshift(next)
        return this.t - start
      }
      this.t = Math.max(this.t, next.at)
      next.fn()
    }
  }
}

export interface LinkOptions {
  /** One-way delay in ms. */
  delayMs?: number
  /** Extra random delay in [0, jitterMs): reorders messages. */
  jitterMs?: number
  /** Fraction of messages dropped, 0..1. */
  loss?: number
  seed?: number
  /** Bytes per ms the link carries (0: unlimited); queueing adds delay. */
  bytesPerMs?: number
  /** With bytesPerMs: a message that would wait longer than this in the queue is dropped (tail drop). */
  maxQueueMs?: number
}

/** A one-way link: deliver(message) after the delay unless dropped. Counts what it carried. */
export class VirtualLink {
  sent = 0
  dropped = 0
  /** Drops by a full queue (congestion), apart from random loss. */
  queueDrops = 0
  delivered = 0
  private readonly random: () => number
  private busyUntil = 0

  constructor(
    private readonly clock: VirtualClock,
    private readonly deliver: (message: Buffer) => void,
    private readonly options: LinkOptions = {}
  ) {
    this.random = seededRandom(options.seed ?? 1)
  }

  send(message: Buffer): void {
    this.sent++
    if (this.random() < (this.options.loss ?? 0)) {
      this.dropped++
      return
    }
    let at = this.clock.now()
    if (this.options.bytesPerMs) {
      if (this.busyUntil - at > (this.options.maxQueueMs ?? Infinity)) {
        this.queueDrops++
        this.dropped++
        return
      }
      this.busyUntil = Math.max(this.busyUntil, at) + message.length / this.options.bytesPerMs
      at = this.busyUntil
    }
    const delay = at - this.clock.now() + (this.options.delayMs ?? 1) + this.random() * (this.options.jitterMs ?? 0)
    const copy = Buffer.from(message)
    this.clock.setTimeout(() => {
      this.delivered++
      this.deliver(copy)
    }, delay)
  }
}
