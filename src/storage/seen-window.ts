/**
 * One sender stream's record of the seqs handled (seen-ids.ts keeps one per sender and id
 * stream): the highest seq handled and a bitmap of the `window` seqs up to it, held only while one
 * of them is missing. Pure: no I/O, no clock.
 */
/** One sender stream: the highest seq handled, until when it is kept, and which seqs of the window were handled. */
export interface StreamRecord {
  high: number
  until: number
  /**
   * Bit `seq mod window` set: `seq` handled, for seqs in (high - window, high]. Undefined: all of
   * them were (the usual case: in order, one destination), so nothing is held.
   */
  bits: Uint8Array | undefined
  /** Seqs of the window (>= 0) not handled: the bits to fill before `bits` can go. */
  unseen: number
}

/** Was `seq` handled? Past the window below the highest: taken as handled (a resend). */
export function handled(rec: StreamRecord, seq: number, window: number): boolean {
  if (seq > rec.high) return false
  if (seq <= rec.high - window || rec.bits === undefined) return true
  return getBit(rec.bits, seq % window)
}

/** The record of a stream first heard at `seq`: nothing below it was handled. `spare`: a bitmap no longer used. */
export function fresh(seq: number, until: number, window: number, spare?: Uint8Array): StreamRecord {
  const rec: StreamRecord = { high: seq, until, bits: undefined, unseen: Math.min(seq, window - 1) }
  if (rec.unseen === 0) return rec
  const bits = spare ? spare.fill(0) : new Uint8Array(window / 8)
  negativeSeqsHandled(bits, seq, window)
  setBit(bits, seq % window)
  rec.bits = bits
  return rec
}

/** Records `seq` as handled. */
export function mark(rec: StreamRecord, seq: number, window: number): void {
  if (seq > rec.high) {
    const d = seq - rec.high
    if (rec.bits === undefined && d === 1) {
      rec.high = seq // in order, nothing missing: the common case holds no bitmap
      return
    }
    if (rec.bits === undefined) {
      rec.bits = new Uint8Array(window / 8).fill(0xff)
      rec.unseen = 0
    }
    const bits = rec.bits
    if (d >= window) {
      bits.fill(0)
      rec.unseen = Math.min(seq, window - 1)
      negativeSeqsHandled(bits, seq, window)
    } else {
      // Slots of seqs high+1 .. seq-1 now stand for unhandled seqs (those leaving were of seqs
      // `window` lower); the slot of `seq` is set below.
      for (let x = rec.high + 1; x <= seq; x++) {
        const slot = x % window
        const old = x - window
        if (old >= 0 && !getBit(bits, slot)) rec.unseen-- // an unhandled seq leaves the window
        clearBit(bits, slot)
        if (x !== seq) rec.unseen++
      }
    }
    rec.high = seq
    setBit(bits, seq % window)
  } else {
    if (seq <= rec.high - window || rec.bits === undefined) return
    const slot = seq % window
    if (getBit(rec.bits, slot)) return
    setBit(rec.bits, slot)
    rec.unseen--
  }
  if (rec.unseen <= 0) {
    rec.bits = undefined // every seq of the window handled
    rec.unseen = 0
  }
}

export function getBit(bits: Uint8Array, slot: number): boolean {
  return ((bits[slot >> 3] as number) & (1 << (slot & 7))) !== 0
}

/**
 * Slots of negative seqs (a stream's first window, below `seq`) count as handled: no such message
 * exists. They are slots seq+1 .. window-1, set a byte at a time (bit by bit, a first message of
 * seq 1 cost ~1 ms of cold CPU for 4,094 slots).
 */
function negativeSeqsHandled(bits: Uint8Array, seq: number, window: number): void {
  let slot = seq + 1
  while (slot < window && slot & 7) setBit(bits, slot++)
  if (slot < window) bits.fill(0xff, slot >> 3, window >> 3) // window: a multiple of 8
}

function setBit(bits: Uint8Array, slot: number): void {
  bits[slot >> 3] = (bits[slot >> 3] as number) | (1 << (slot & 7))
}

function clearBit(bits: Uint8Array, slot: number): void {
  bits[slot >> 3] = (bits[slot >> 3] as number) & ~(1 << (slot & 7))
}
