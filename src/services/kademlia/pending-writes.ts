/**
 * Counts a store's writes still in flight, so `Kademlia.close()` can wait for them: a write that
 * lands after close would touch a store (or directory) its owner has already closed or removed.
 */
import type { DoneCallback } from '../../storage/store.js'

export class PendingWrites {
  private count = 0
  private waiters: Array<() => void> = []

  /** Wraps a write's callback; the write counts as in flight until the callback runs. */
  track(done: DoneCallback): DoneCallback {
    this.count++
    let called = false
    return (err) => {
      if (called) return
      called = true
      this.count--
      if (this.count === 0) for (const wake of this.waiters.splice(0)) wake()
      done(err)
    }
  }

  /** The writes in flight now. */
  get inFlight(): number {
    return this.count
  }

  /** Resolves when no write is in flight, or after `timeoutMs` (a store that never answers). */
  idle(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(finish, timeoutMs)
      function finish(): void {
        clearTimeout(timer)
        resolve()
      }
      this.waiters.push(finish)
    })
  }
}
