/**
 * What we know of one remote node: its active channel, the messages waiting for it, the ones
 * sent and not yet acknowledged, and the ids it sent us lately (to drop duplicates).
 */
import type { Channel } from './manager.js'

export interface OutItem {
  /** Our sequence number of the message: the key of `inflight`. */
  key: number
  /** Order of sending, to requeue in order after a reconnect. */
  seq: number
  frame: Buffer
  expiresAt: number
  realtime: boolean
  /** Realtime only: the latest time it may still be written. */
  writeBy: number
  callback: ((err: Error | null) => void) | undefined
  /** The channel it was written on, while waiting for its ACK. */
  channel: Channel | undefined
}

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

export class Peer {
  readonly signId: string
  /** The active channel: frames go out on it. */
  channel: Channel | undefined
  /** Every open channel with this peer, oldest first (the active one among them). */
  readonly channels: Channel[] = []
  queue: OutItem[] = []
  queuedBytes = 0
  readonly inflight = new Map<number, OutItem>()
  dialing: Promise<void> | undefined
  backoffMs = 0
  reconnectTimer: NodeJS.Timeout | undefined
  lastSentAt = 0
  lastReceivedAt = 0
  lastMessageAt = 0
  /** Recently seen sequence numbers, per sender prefix (newest prefix first). */
  private readonly windows: SeenWindow[] = []
  /** Ids received and not yet acknowledged, by the channel they came in on; sent with the next batch. */
  readonly pendingAcks = new Map<Channel, Buffer[]>()
  /** Frames to write at the end of this turn, and their size. */
  out: Buffer[] = []
  outBytes = 0
  writeScheduled = false
  /** send() said false: emit `drain` once the queue has emptied. */
  wantsDrain = false
  /** The channel said false: wait for its drain. */
  blocked = false

  constructor(signId: string) {
    this.signId = signId
  }

  /**
   * True the first time a message id is seen (recently). Ids are the sender's 8-byte process
   * prefix and a sequence number, so the check is on numbers, per prefix (a peer that restarts
   * has a new one; the last few are kept). The oldest is forgotten through a ring, in O(1).
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

  get waiting(): number {
    return this.queue.length + this.inflight.size
  }
}
