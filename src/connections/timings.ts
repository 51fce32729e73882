/**
 * Every timer of the connection layer, in one place; tests pass small values.
 *
 * One set of defaults for every transport: the manager passes its timings to the TCP and UDP
 * channels it makes (README.md, "Timings", has the table per transport). UDP needs no shorter
 * keepalive than TCP: NATs keep a UDP binding at least 2 minutes (RFC 4787, REQ-5) and the
 * common short ones 30 s, while a quiet session sends a keepalive after 15 s of silence.
 */
export interface ConnectionTimings {
  /** A PING goes out when we have sent nothing for this long (UDP: also when we heard nothing). */
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
  /** A handshake (TCP connect included) not done in this time fails. */
  handshakeTimeoutMs: number
  /** UDP attempts start this long after TCP ones, if no session is up by then (Happy Eyeballs). */
  udpHeadStartMs: number
  /** How often expiry, keepalive and idleness are checked. */
  tickMs: number
}

export const DEFAULT_TIMINGS: Readonly<ConnectionTimings> = {
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

/** Every timer of a UDP channel (its own, since UDP has no teardown and no retransmission below it). */
export interface UdpChannelTimings {
  /** The client gives up when the handshake has not completed in this time. */
  handshakeTimeoutMs: number
  /** First Hello retry; each next one waits 1.5 times longer, plus up to as much again at random. */
  helloRetryMs: number
  /**
   * UDP has no teardown of its own: a peer that died says nothing. When nothing arrived for this
   * long, the channel sends a ping (an empty block the peer must acknowledge).
   */
  keepaliveMs: number
  /** Nothing arrived for this long (pings included): the peer is gone; `close` with ERR_TIMEOUT. */
  deadAfterMs: number
  /** After close(): how long we keep sending what is unacknowledged, and our EOF. */
  lingerMs: number
  /** After both EOFs: how long we still acknowledge the peer's EOF if it comes again. */
  timeWaitMs: number
}

export const DEFAULT_UDP_TIMINGS: Readonly<UdpChannelTimings> = {
  handshakeTimeoutMs: DEFAULT_TIMINGS.handshakeTimeoutMs,
  helloRetryMs: 1_000,
  keepaliveMs: DEFAULT_TIMINGS.keepaliveMs,
  deadAfterMs: DEFAULT_TIMINGS.deadAfterMs,
  lingerMs: 10_000,
  timeWaitMs: 2_000
}

/** UdpChannels.close(): how long channels may take to have their EOF acknowledged before abort. */
export const CLOSE_LINGER_MS = 500

/** What of the connection timings a UDP channel takes (the rest are its own defaults). */
export function udpChannelTimings(t: ConnectionTimings): Partial<UdpChannelTimings> {
  return { handshakeTimeoutMs: t.handshakeTimeoutMs, keepaliveMs: t.keepaliveMs, deadAfterMs: t.deadAfterMs }
}

/** Default expiry of a non-realtime message: 7 days. */
export const DEFAULT_EXPIRE_AFTER_MS = 7 * 24 * 3600_000
