/** Every timer of the connection layer, in one place; tests pass small values. */
export interface ConnectionTimings {
  /** A PING goes out when we have sent nothing for this long. */
  keepaliveMs: number
  /** A channel that has received nothing for this long is dead and closed. */
  deadAfterMs: number
  /** A channel that carried no message for this long, with nothing waiting, is closed. */
  idleCloseMs: number
  /** First reconnect delay while messages wait; doubles up to reconnectMaxMs. */
  reconnectMinMs: number
  reconnectMaxMs: number
  /** How long a realtime message may wait for a connection being made. */
  realtimeWaitMs: number
  handshakeTimeoutMs: number
  /** UDP attempts start this long after TCP ones, if no session is up by then (Happy Eyeballs). */
  udpHeadStartMs: number
  /** How often expiry, keepalive and idleness are checked. */
  tickMs: number
}

export const DEFAULT_TIMINGS: ConnectionTimings = {
  keepaliveMs: 15_000,
  deadAfterMs: 60_000,
  idleCloseMs: 5 * 60_000,
  reconnectMinMs: 250,
  reconnectMaxMs: 30_000,
  realtimeWaitMs: 5_000,
  handshakeTimeoutMs: 10_000,
  udpHeadStartMs: 150,
  tickMs: 1_000
}

/** Default expiry of a non-realtime message: 7 days. */
export const DEFAULT_EXPIRE_AFTER_MS = 7 * 24 * 3600_000
