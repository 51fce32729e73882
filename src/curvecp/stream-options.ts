/**
 * The public shapes of a CurveCP message stream (`message-stream.ts` re-exports them): the
 * handlers it calls, its options and their defaults, its states and its counters.
 */
import type { MMError } from '../errors.js'
import type { EOF_FAILURE, EOF_SUCCESS } from './message-layer.js'
import type { StreamClock } from './stream-clock.js'

// ---- Implementation constant (options override) ----
/** The stream fails when data stays unacknowledged this long. */
export const GIVE_UP_MS = 60_000

export interface MessageStreamHandlers {
  /** Sends one encoded message (the transport seals it into a packet). */
  transmit(message: Buffer): void
  /**
   * When given, used instead of `transmit`: the message is `head[0, headBytes)` followed by
   * `data` (`dataBytes`: one buffer, or the parts of a block that spans writes, in turn), so that
   * the transport copies them straight into its packet. `head` is a scratch buffer, valid only
   * during the call; `data` is the block's own (never changed).
   */
  transmitParts?(head: Buffer, headBytes: number, data: Buffer | readonly Buffer[], dataBytes: number): void
  /** In-order bytes from the peer. */
  onData?(data: Buffer): void
  /** The peer's stream ended (every byte delivered): success or failure. */
  onEnd?(eof: typeof EOF_SUCCESS | typeof EOF_FAILURE): void
  /** Our EOF was acknowledged: everything we wrote arrived. */
  onFinish?(): void
  /** Buffered bytes fell below the high-water mark after write() said false. */
  onDrain?(): void
  /** The stream failed (give-up timeout); no more callbacks follow. */
  onError?(err: MMError): void
}

export interface MessageStreamOptions extends MessageStreamHandlers {
  clock?: StreamClock
  /** Largest message to send now (1088; the Initiate's room before the handshake completes). */
  maxMessageBytes?: number
  /** Largest block, at most 1024 (tests use 1 for one-byte blocks). */
  maxBlockBytes?: number
  sendWindowBytes?: number
  receiveWindowBytes?: number
  maxOutOfOrderBlocks?: number
  maxBlocksInFlight?: number
  initialWindowBlocks?: number
  initialRtoMs?: number
  minRtoMs?: number
  maxRtoMs?: number
  giveUpMs?: number
  highWaterBytes?: number
  maxBufferedBytes?: number
  /** Start sending at once (default true); false waits for {@link MessageStream.start}. */
  started?: boolean
}

export type SendState = 'open' | 'ending' | 'ended' | 'failed'
export type ReceiveState = 'open' | 'ended' | 'failed'

/** Counters for tests and stats. */
export interface StreamStats {
  messagesIn: number
  messagesOut: number
  blocksSent: number
  retransmissions: number
  timeouts: number
  /** Timeouts undone because the earlier transmission was acknowledged after all. */
  spuriousTimeouts: number
  fastRetransmits: number
  acksSent: number
  dropped: { malformed: number; beyondWindow: number; afterEof: number; outOfOrderFull: number; duplicate: number }
}

/** Fresh counters, all zero. */
export function newStreamStats(): StreamStats {
  return {
    messagesIn: 0,
    messagesOut: 0,
    blocksSent: 0,
    retransmissions: 0,
    timeouts: 0,
    spuriousTimeouts: 0,
    fastRetransmits: 0,
    acksSent: 0,
    dropped: { malformed: 0, beyondWindow: 0, afterEof: 0, outOfOrderFull: 0, duplicate: 0 }
  }
}
