/**
 * What the connection layer refused, closed or evicted, and why: plain counters an operator reads
 * (ConnectionManager.stats(), Platform.connectionStats()) to see an attack.
 */

/** Why something was refused or closed. */
export type RefusalReason =
  /** Handshakes: too many at once from one address, or in all. */
  | 'handshakeConcurrentPerAddress'
  | 'handshakeConcurrentGlobal'
  /** Handshakes: over the per-address or global rate. */
  | 'handshakeRatePerAddress'
  | 'handshakeRateGlobal'
  /** A handshake that failed or timed out. */
  | 'handshakeFailed'
  /** An authenticated session with no room for its peer in the peer table. */
  | 'peerTableFull'
  /** A stranger evicted to make room (its channels closed). */
  | 'strangerEvicted'
  /** A stranger's UDP session dropped to make room in a full UDP session table. */
  | 'udpSessionEvicted'
  /** A channel past the per-peer channel bound. */
  | 'tooManyChannels'
  /** A peer that does not read what we send (held ACKs or outgoing bytes past their bound). */
  | 'notReading'
  /** A frame over the peer's frame bound. */
  | 'frameTooLarge'
  /** A stranger's frame not finished within its deadline. */
  | 'frameDeadline'
  /** Any other undecodable frame. */
  | 'badFrame'
  /** A write that threw (a bound below us): the channel closed instead of the process. */
  | 'writeFailed'
  /** A send to a new peer refused: the table is full of busy peers. */
  | 'sendPeerTableFull'

export type RefusalCounts = Record<RefusalReason, number>

export function emptyCounts(): RefusalCounts {
  return {
    handshakeConcurrentPerAddress: 0,
    handshakeConcurrentGlobal: 0,
    handshakeRatePerAddress: 0,
    handshakeRateGlobal: 0,
    handshakeFailed: 0,
    peerTableFull: 0,
    strangerEvicted: 0,
    udpSessionEvicted: 0,
    tooManyChannels: 0,
    notReading: 0,
    frameTooLarge: 0,
    frameDeadline: 0,
    badFrame: 0,
    writeFailed: 0,
    sendPeerTableFull: 0
  }
}
