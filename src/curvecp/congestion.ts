/**
 * Congestion control of a CurveCP message stream: a window of blocks in flight (curvecp.org's
 * "decongestion" leaves the algorithm to the sender; this is NewReno's shape counted in blocks).
 *
 * - Slow start: below `ssthresh` each acknowledged block widens the window by one block; above
 *   it, by 1/cwnd (one block per window of acknowledged blocks). Capped at `maxWindowBlocks`.
 * - Loss seen through selective ranges (fast retransmit): ssthresh = cwnd/2 (at least
 *   MIN_WINDOW_BLOCKS), cwnd = ssthresh, then no further cut for one round trip (recovery).
 * - Retransmission timeout: the same ssthresh, cwnd = MIN_WINDOW_BLOCKS, and the window, ssthresh
 *   and RTO before it are kept so that the cut can be undone if the timeout proves spurious (an
 *   acknowledgement names the transmission before it: Eifel, RFC 3522).
 *
 * Pure: time comes in as arguments; the RTT estimator is shared with the stream.
 */
import type { RttEstimator } from './rtt.js'

// ---- Implementation constants (options override the first) ----
/** Congestion window at the start and after an RTO, in blocks. */
export const INITIAL_WINDOW_BLOCKS = 8
export const MIN_WINDOW_BLOCKS = 2

export class CongestionControl {
  /** Congestion window in blocks (fractional above ssthresh). */
  cwnd: number
  /** Slow-start threshold in blocks. */
  ssthresh = Infinity
  /** No fast-retransmit cut before this time (one per round trip). */
  private recoveryUntil = 0
  /** The state before the latest timeout, while that timeout may still prove spurious. */
  private undo: { cwnd: number; ssthresh: number; rto: number } | undefined

  private readonly rtt: RttEstimator
  private readonly maxWindowBlocks: number

  constructor(rtt: RttEstimator, initialWindowBlocks = INITIAL_WINDOW_BLOCKS, maxWindowBlocks = Infinity) {
    this.rtt = rtt
    this.cwnd = initialWindowBlocks
    this.maxWindowBlocks = maxWindowBlocks
  }

  /** Whether one more block may go while `inFlight` blocks are in flight (always at least one). */
  allows(inFlight: number): boolean {
    return inFlight < Math.max(1, Math.floor(this.cwnd))
  }

  /** One block was acknowledged: widen the window. */
  onAcked(): void {
    if (this.cwnd < this.ssthresh) this.cwnd += 1
    else this.cwnd += 1 / this.cwnd
    if (this.cwnd > this.maxWindowBlocks) this.cwnd = this.maxWindowBlocks
  }

  /** Blocks were found lost through selective acknowledgements: halve, once per round trip. */
  onLoss(now: number): void {
    if (now < this.recoveryUntil) return
    this.cut(now, false)
  }

  /**
   * The retransmission timer expired: remember the state for an undo, then shrink to the
   * minimum. The caller backs the RTO off afterwards.
   */
  onTimeout(now: number): void {
    this.undo = { cwnd: this.cwnd, ssthresh: this.ssthresh, rto: this.rtt.rto }
    this.cut(now, true)
  }

  /** A timeout happened that may still prove spurious (its earlier transmissions count). */
  get undoPossible(): boolean {
    return this.undo !== undefined
  }

  /** A repeat sent after the timeout was acknowledged, not the original: the timeout was real. */
  timeoutConfirmed(): void {
    this.undo = undefined
  }

  /**
   * The transmission before the latest timeout was acknowledged after all: the round trip grew
   * past the RTO and nothing was lost. Restores the window (never shrinking it) and ssthresh, and
   * keeps the RTO at least as long as before. False when there is nothing to undo.
   */
  undoTimeout(): boolean {
    const undo = this.undo
    if (!undo) return false
    this.undo = undefined
    this.cwnd = Math.max(this.cwnd, undo.cwnd)
    this.ssthresh = undo.ssthresh
    this.rtt.keepAtLeast(undo.rto)
    return true
  }

  private cut(now: number, timeout: boolean): void {
    this.ssthresh = Math.max(this.cwnd / 2, MIN_WINDOW_BLOCKS)
    this.cwnd = timeout ? MIN_WINDOW_BLOCKS : this.ssthresh
    this.recoveryUntil = now + this.rtt.recoveryMs
  }
}
