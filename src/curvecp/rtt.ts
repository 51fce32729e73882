/**
 * Round-trip time and retransmission timeout (RTO) of a CurveCP message stream
 * (curvecp.org/messages.html leaves the choice to the sender; DJB's `curvecpmessage` keeps an
 * average and a deviation, as here). Jacobson's estimator in the RFC 6298 shape: the first
 * sample sets SRTT = R and RTTVAR = R/2; later ones move SRTT by 1/8 and RTTVAR by 1/4 of the
 * difference. RTO = SRTT + max(4·RTTVAR, SRTT/2), clamped to [minRto, maxRto]; each expiry
 * doubles it (back-off) until the next sample. Pure: no clock, samples come in as numbers.
 */

// ---- Implementation constants (options override) ----
/** RTO before any sample (the reference starts at 1 s). */
export const INITIAL_RTO_MS = 1000
export const MIN_RTO_MS = 20
export const MAX_RTO_MS = 10_000

export interface RttOptions {
  initialRtoMs?: number
  minRtoMs?: number
  maxRtoMs?: number
}

export class RttEstimator {
  /** Smoothed round-trip time in ms (0 before the first sample). */
  srtt = 0
  /** Round-trip time variation in ms. */
  rttvar = 0
  /** Current retransmission timeout in ms. */
  rto: number
  readonly minRto: number
  readonly maxRto: number

  constructor(options: RttOptions = {}) {
    this.rto = options.initialRtoMs ?? INITIAL_RTO_MS
    this.minRto = options.minRtoMs ?? MIN_RTO_MS
    this.maxRto = options.maxRtoMs ?? MAX_RTO_MS
  }

  /** Takes one round-trip measurement in ms; negative or NaN samples are ignored. */
  sample(rtt: number): void {
    if (!(rtt >= 0)) return
    if (this.srtt === 0) {
      this.srtt = rtt
      this.rttvar = rtt / 2
    } else {
      const delta = rtt - this.srtt
      this.srtt += delta / 8
      this.rttvar += (Math.abs(delta) - this.rttvar) / 4
    }
    // Jacobson's timeout, with a margin of half an RTT when the variance has settled to nothing:
    // a timeout equal to the round trip would fire on blocks whose acknowledgement is arriving.
    this.rto = Math.min(this.maxRto, Math.max(this.minRto, this.srtt + Math.max(4 * this.rttvar, this.srtt / 2)))
  }

  /** The timeout expired: wait twice as long next time (up to maxRto). */
  backOff(): void {
    this.rto = Math.min(this.maxRto, this.rto * 2)
  }

  /**
   * A timeout proved spurious: the round trip is longer than we thought, so the timeout stays at
   * least `rto` (the one before that expiry) until a new sample.
   */
  keepAtLeast(rto: number): void {
    this.rto = Math.max(this.rto, rto)
  }

  /** How long a fast-retransmit recovery lasts: one round trip, at least minRto. */
  get recoveryMs(): number {
    return Math.max(this.srtt, this.minRto)
  }
}
