/**
 * What we know of one remote node: where we are with reaching it (`state`), its channels, the
 * messages waiting for it, the ones sent and not yet acknowledged, and the ids it sent us lately.
 *
 * State (one field; each step asserts the state it expects):
 *
 *   idle ──dialStarted──▶ dialing ──dialEnded, messages wait──▶ backoff ──backoffEnded──▶ idle
 *   dialing ──dialEnded, nothing waits──▶ idle
 *   idle | dialing | backoff ──connected (our dial won, or the peer dialled us)──▶ connected
 *   connected ──disconnected──▶ dialing (a dial of ours still runs) or idle (then maybe backoff)
 *
 * A dial only starts from idle: that one check replaces the old guard on five conditions
 * (channel, dial, reconnect timer, started, closed). In `connected` a dial of ours may still
 * run (the peer dialled us meanwhile); its channel then joins as a second session.
 */
import { StateError } from '../errors.js'
import { AckList } from './ack-list.js'
import type { Channel } from './channel.js'
import { SeenIds } from './seen-ids.js'

export type PeerState = 'idle' | 'dialing' | 'backoff' | 'connected'

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
  /** A message from the persistent outbox (delivery.ts): its stored entry. */
  durable?: DurableEntry
}

/** What the outbox knows of a message in memory (storage/outbox-store.ts's entry, and its topic). */
export interface DurableEntry {
  id: string
  destination: string
  seq: number
  expiresAt: number
  bytes: number
  topic: string
  /** Its write to the outbox failed (its sender was told): nothing to remove once settled. */
  unstored?: boolean
}

export class Peer {
  readonly signId: string
  private current: PeerState = 'idle'
  /** The active channel: frames go out on it (set exactly in `connected`). */
  channel: Channel | undefined
  /** Every open channel with this peer, oldest first (the active one among them). */
  readonly channels: Channel[] = []
  /** A dial of ours runs (also possible in `connected`: see the header). */
  private dialRunning = false
  /** The reconnect delay now; doubles with each failure (timers.ts). */
  backoffMs = 0
  private backoffTimer: NodeJS.Timeout | undefined
  queue: OutItem[] = []
  queuedBytes = 0
  readonly inflight = new Map<number, OutItem>()
  /** Messages in the persistent outbox not loaded into `queue` yet (delivery.ts keeps it). */
  stored = 0
  lastSentAt = 0
  lastReceivedAt = 0
  lastMessageAt = 0
  /** Ids it sent us lately (receiving: drop duplicates). */
  readonly seen = new SeenIds()
  /** Ids received and not yet acknowledged, by the channel they came in on; sent with the next batch. */
  readonly pendingAcks = new Map<Channel, AckList>()
  /** Frames to write at the end of this turn, and their size. */
  out: Buffer[] = []
  outBytes = 0
  writeScheduled = false
  /** Ids of durable messages from this peer being recorded: our writes to it wait for them. */
  recording = 0
  /**
   * Durable ids from this peer whose ACK waits for a record to be written (handled ones and
   * resends of them): bounded by limits.maxHeldAckIds (delivery-receive.ts).
   */
  awaitingRecord = 0
  /** A write waits for a record (send.ts scheduleWrite). */
  writeDeferred = false
  /** The channel said false: wait for its drain. */
  blocked = false

  constructor(signId: string) {
    this.signId = signId
  }

  get state(): PeerState {
    return this.current
  }

  /** Messages queued, unacknowledged, or waiting in the outbox's storage. */
  get waiting(): number {
    return this.queue.length + this.inflight.size + this.stored
  }

  /** True while a dial of ours runs. */
  get dialing(): boolean {
    return this.dialRunning
  }

  // ---- steps ----

  /** idle → dialing. */
  dialStarted(): void {
    this.expect('dialStarted', 'idle')
    this.current = 'dialing'
    this.dialRunning = true
  }

  /**
   * Our dial settled (won, lost or failed). In `dialing` (no channel came of it): → idle; the
   * caller then backs off when messages wait. In `connected`: stays.
   */
  dialEnded(): void {
    this.dialRunning = false
    if (this.current === 'dialing') this.current = 'idle'
  }

  /** idle → backoff: `retry` runs after `ms` (the timer is unref'd, and cleared on leaving). */
  backoff(ms: number, retry: () => void): void {
    this.expect('backoff', 'idle')
    this.current = 'backoff'
    this.backoffMs = ms
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined
      this.backoffEnded()
      retry()
    }, ms)
    this.backoffTimer.unref()
  }

  /** backoff → idle (the timer fired, or the peer is forgotten or closed). */
  backoffEnded(): void {
    this.expect('backoffEnded', 'backoff')
    this.clearBackoff()
    this.current = 'idle'
  }

  /** any → connected: `channel` is the active one. A pending backoff is over. */
  connected(channel: Channel): void {
    this.clearBackoff()
    this.backoffMs = 0
    this.channel = channel
    this.current = 'connected'
  }

  /** connected → dialing (a dial of ours still runs) or idle: the last channel closed. */
  disconnected(): void {
    this.expect('disconnected', 'connected')
    this.channel = undefined
    this.current = this.dialRunning ? 'dialing' : 'idle'
  }

  /** Stops any timer (close, eviction); the peer is not used after. */
  stop(): void {
    this.clearBackoff()
    this.channel = undefined
    this.current = 'idle'
  }

  private clearBackoff(): void {
    if (this.backoffTimer) clearTimeout(this.backoffTimer)
    this.backoffTimer = undefined
  }

  private expect(step: string, ...states: PeerState[]): void {
    if (!states.includes(this.current)) throw new StateError('ERR_INVALID_ARGUMENT', `peer ${this.signId.slice(0, 12)}: ${step} in state ${this.current}`)
  }
}
