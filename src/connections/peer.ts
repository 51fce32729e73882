/**
 * What we know of one remote node: its active channel, the messages waiting for it, the ones
 * sent and not yet acknowledged, and the ids it sent us lately (to drop duplicates).
 */
import type { Channel } from './manager.js'

export interface OutItem {
  id: Buffer
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
  private readonly seen = new Set<string>()
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

  /** True the first time an id is seen (recently). */
  firstSight(key: string): boolean {
    if (this.seen.has(key)) return false
    this.seen.add(key)
    if (this.seen.size > SEEN_IDS) this.seen.delete(this.seen.values().next().value as string)
    return true
  }

  get waiting(): number {
    return this.queue.length + this.inflight.size
  }
}
