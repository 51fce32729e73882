/** The options of a UDP channel (udp-channel.ts), client and server side. */
import type { IdentityLike } from '../identity/identity.js'
import type { AuthMode } from '../curvecp/handshake.js'
import type { MessageStreamOptions, StreamClock } from '../curvecp/message-stream.js'
import type { UdpChannelTimings } from './timings.js'

/** Tuning passed through to the message stream (tests, benchmarks). */
export type UdpStreamTuning = Pick<
  MessageStreamOptions,
  'sendWindowBytes' | 'receiveWindowBytes' | 'initialWindowBlocks' | 'initialRtoMs' | 'minRtoMs' | 'maxRtoMs' | 'giveUpMs' | 'highWaterBytes' | 'maxBlockBytes'
>

export interface UdpClientOptions {
  identity: IdentityLike
  /** The server's long-term key S (its boxId, base64). */
  remoteBoxId: string
  /** The signId we mean to reach (reported by `secure`; with auth 'signid' its boxId is S). */
  remoteSignId?: string
  auth?: AuthMode
  /** The server's name (curvecp.org/addressing.html): DJB's curvecpserver requires its `sname`. */
  domainName?: string
  /** The server's extension, 16 bytes (default zero). */
  serverExtension?: Buffer
  clock?: StreamClock
  timings?: Partial<UdpChannelTimings>
  stream?: UdpStreamTuning
  /** Keep sending after the peer's EOF (default false: our side ends too). */
  allowHalfOpen?: boolean
}

export interface UdpServerOptions {
  auth?: AuthMode
  clock?: StreamClock
  timings?: Partial<UdpChannelTimings>
  stream?: UdpStreamTuning
  allowHalfOpen?: boolean
}
