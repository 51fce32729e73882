/**
 * What the parts of the connection layer share: the host above, our identity, timings, bounds
 * and the peer table. The manager (manager.ts) owns it and wires the parts together: sending
 * (send.ts), receiving (receive.ts), dialling (dial.ts), sessions (sessions.ts) and timers
 * (timers.ts). Parts reach each other only through the small interfaces here, so that no two
 * files import each other.
 */
import type { IdentityLike } from '../identity/identity.js'
import type { Logger } from '../logger.js'
import type { Message, Scope } from './message-types.js'
import type { RefusalCounts } from './counters.js'
import type { ConnectionLimits, PeerTable } from './limits.js'
import type { Peer } from './peer.js'
import type { ConnectionTimings } from './timings.js'

/** What the connection layer needs of the platform above it. */
export interface ConnectionHost {
  deliver(message: Message): void
  scopeOf(signId: string): Scope
  emit(event: 'connection' | 'disconnected', signId: string): boolean
  emit(event: 'drain', signId: string): boolean
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
