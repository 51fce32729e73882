/**
 * What the parts of the connection layer share: the host above, our identity, timings, bounds
 * and the peer table. The manager (manager.ts) owns it and wires the parts together: sending
 * (send.ts), receiving (receive.ts), dialling (dial.ts), sessions (sessions.ts) and timers
 * (timers.ts). Parts reach each other only through the small interfaces here, so that no two
 * files import each other.
 */
import type { IdentityLike } from '../identity/identity.js'
import type { Logger } from '../logger.js'
import type { Channel } from './channel.js'
import type { DataFrame } from './frames.js'
import type { Message, OutgoingMessage, Scope, SendOptions } from './message-types.js'
import type { RefusalCounts } from './counters.js'
import type { ConnectionLimits, PeerTable } from './limits.js'
import type { OutItem, Peer } from './peer.js'
import type { ConnectionTimings } from './timings.js'

/** What the connection layer needs of the platform above it. */
export interface ConnectionHost {
  deliver(message: Message): void
  scopeOf(signId: string): Scope
  emit(event: 'connection' | 'disconnected', signId: string): boolean
  emit(event: 'drain', signId: string): boolean
  /** A message from the outbox was acknowledged by its destination's handlers (delivery.ts). */
  emit(event: 'delivered', info: MessageFate): boolean
  /** A message from the outbox failed for good (expired, cancelled): `info.error` says why. */
  emit(event: 'failed', info: MessageFate & { error: Error }): boolean
}

/** What the `delivered` and `failed` events tell of a message from the outbox. */
export interface MessageFate {
  id: string
  destination: string
  topic?: string
}

export interface ConnectionContext {
  readonly host: ConnectionHost
  readonly identity: IdentityLike
  readonly logger: Logger
  readonly timings: ConnectionTimings
  readonly limits: ConnectionLimits
  /** Known peers by signId. */
  readonly peers: Map<string, Peer>
  /** Admission to `peers` (budgets for strangers, eviction). */
  readonly table: PeerTable
  /** What was refused or closed, and why (stats()). */
  readonly counts: RefusalCounts
  /** Listening (start() done): dials may begin. */
  readonly started: boolean
  readonly closed: boolean
}

/** The persistent outbox's delivery, as sending and receiving see it (delivery.ts). */
export interface Durable {
  /** A non-realtime send: into the outbox first. */
  send(message: OutgoingMessage, options: SendOptions, expireAfter: number): boolean
  /** The key in `inflight` of an ACKed id when it is one of the outbox's, else undefined. */
  ackKey(buf: Buffer, at?: number): number | undefined
  /** An outbox message was acknowledged. */
  delivered(item: OutItem): void
  /** An outbox message failed (ERR_CLOSED: it stays in the outbox). */
  failed(item: OutItem, err: Error): void
  /**
   * A durable DATA frame came in on `via`: hand it over once; its ACK goes once its id is
   * recorded. True: the ACK is due now (a resend, nothing being recorded), for the caller to send.
   */
  receive(peer: Peer, frame: DataFrame, via: Channel): boolean
  /**
   * Writes the ids received so far to storage now, not after this turn: their ACKs go sooner.
   * False where the store writes later (after the turn, as LevelDB): nothing cut, none sooner.
   */
  recordNow(peer: Peer): boolean
}

/** Moving queued frames out, and the `drain` owed after a false from send() (send.ts). */
export interface Flushing {
  flush(peer: Peer): void
  /** Writes the peer's batch at the end of this turn; `force` even while ids are being recorded. */
  scheduleWrite(peer: Peer, force?: boolean): void
  /** send() said false for `signId`: `drain` once `hasRoom()` (undefined: on the next tick). */
  drainWhen(signId: string, hasRoom: (() => boolean) | undefined): void
}

/** Dialling, as the other parts see it (dial.ts). */
export interface Dialling {
  /** Starts a dial when the peer is idle and the manager is running. */
  ensureChannel(peer: Peer): void
}

/** The reconnect timer, as the other parts see it (timers.ts). */
export interface Reconnecting {
  /** The peer lost its session or a dial failed: back off and dial again while messages wait. */
  timersSessionLost(peer: Peer): void
}
