/**
 * The message ids a peer sent us lately, to drop duplicates after a resend (receiving side).
 * Ids are the sender's 8-byte process prefix and a 64-bit sequence number, so the check is on
 * numbers, per prefix (a peer that restarts has a new one; the last few are kept).
 */

/** Ids remembered per peer to drop duplicates after a resend. */
export const SEEN_IDS = 8192
/** Sender prefixes (process lifetimes) remembered per peer. */
export const SEEN_PREFIXES = 4

/** Sequence numbers seen lately from one sender prefix (the prefix as two 32-bit words). */
interface SeenWindow {
  p0: number
  p1: number
  seen: Set<number>
  ring: number[]
  at: number
}

export class SeenIds {
  /** Recently seen sequence numbers, per sender prefix (newest prefix first). */
  private readonly windows: SeenWindow[] = []

  /**
   * True the first time a message id (16 bytes) is seen (recently). The oldest is forgotten
   * through a ring, in O(1).
   */
  firstSight(id: Buffer): boolean {
    const seq = id.readUInt32BE(8) * 0x1_0000_0000 + id.readUInt32BE(12)
    const p0 = id.readUInt32BE(0)
    const p1 = id.readUInt32BE(4)
    let window: SeenWindow | undefined
    for (let i = 0; i < this.windows.length; i++) {
      const w = this.windows[i] as SeenWindow
      if (w.p0 === p0 && w.p1 === p1) {
        window = w
        break
      }
    }
    if (!window) {
      window = { p0, p1, seen: new Set(), ring: [], at: 0 }
      this.windows.unshift(window)
      if (this.windows.length > SEEN_PREFIXES) this.windows.pop()
    }
    if (window.seen.has(seq)) return false
    window.seen.add(seq)
    if (window.ring.length < SEEN_IDS) {
      window.ring.push(seq) // grows with use: an idle session holds almost nothing
      return true
    }
    window.seen.delete(window.ring[window.at] as number)
    window.ring[window.at] = seq
    window.at = (window.at + 1) % SEEN_IDS
    return true
  }
}
