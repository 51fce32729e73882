/**
 * The connection layer's UDP side: the node's one UDP endpoint (transports/udp.ts: socket, links,
 * Hello/Cookie/Initiate) with each link it dials or accepts wrapped into a {@link UdpChannel}.
 * The endpoint knows nothing of channels (arrows point down); this file makes and tracks them.
 */
import { StateError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import type { AuthMode } from '../curvecp/handshake.js'
import type { StreamClock } from '../curvecp/message-stream.js'
import type { ConnectionInfoEntry } from '../transports/connection-info.js'
import { UdpEndpoint, type DatagramSocket, type UdpListenOptions } from '../transports/udp.js'
import { UdpChannel, type UdpServerOptions, type UdpStreamTuning } from './udp-channel.js'
import { CLOSE_LINGER_MS, type UdpChannelTimings } from './timings.js'

export interface UdpChannelsOptions {
  identity: IdentityLike
  /** 'signid' (default) binds the peer's signId into the handshake; 'none' is plain CurveCP. */
  auth?: AuthMode
  /** Our server extension (16 bytes, default zero). */
  serverExtension?: Buffer
  /** When set, accepted clients must name this server (DJB's tools send their `sname`). */
  domainName?: string
  maxSessions?: number
  clock?: StreamClock
  timings?: Partial<UdpChannelTimings>
  stream?: UdpStreamTuning
  allowHalfOpen?: boolean
  /** Wraps the socket (tests: a lossy link). */
  wrapSocket?: (socket: DatagramSocket) => DatagramSocket
  /** close(): how long channels may take to have their EOF acknowledged. */
  closeLingerMs?: number
  /** Admission of a Hello or new-session Initiate from an address (false: dropped, before crypto). */
  admit?: (address: string) => boolean
  /**
   * With this, a full session table makes room: the accepted channel of a peer this says is a
   * stranger, the one with the lowest `rank` (least recently useful), is aborted.
   */
  strangers?: { isStranger(signId: string): boolean; rank(signId: string): number; evicted(): void }
}

export { CLOSE_LINGER_MS } from './timings.js'

export interface UdpDialOptions {
  /** The server's boxId (base64): its long-term key S. */
  remoteBoxId: string
  /** The signId we mean to reach (what `secure` reports on the client side). */
  remoteSignId?: string
  /** Override the transport's identity (rare). */
  identity?: IdentityLike
  auth?: AuthMode
  domainName?: string
  serverExtension?: Buffer
  /** A fixed client extension (default: random per dial). */
  clientExtension?: Buffer
  handshakeTimeoutMs?: number
}

/**
 * One UDP endpoint per node: `listen()`, publish `connectionInfo()`, `dial()` peers, and take
 * accepted channels from `onChannel()`. Every channel is a {@link UdpChannel}; they are tracked
 * until released, so that close() can let them finish.
 */
export class UdpChannels {
  readonly endpoint: UdpEndpoint
  private readonly options: UdpChannelsOptions
  private channelListener: ((channel: UdpChannel) => void) | undefined
  private readonly channels = new Set<UdpChannel>()
  private closed = false
  private closing: Promise<void> | undefined

  constructor(options: UdpChannelsOptions) {
    this.options = options
    this.endpoint = new UdpEndpoint({
      identity: options.identity,
      auth: options.auth ?? 'signid',
      ...(options.serverExtension ? { serverExtension: options.serverExtension } : {}),
      ...(options.domainName !== undefined ? { domainName: options.domainName } : {}),
      ...(options.maxSessions !== undefined ? { maxSessions: options.maxSessions } : {}),
      ...(options.wrapSocket ? { wrapSocket: options.wrapSocket } : {}),
      ...(options.admit ? { admit: options.admit } : {}),
      ...(options.strangers ? { makeRoom: () => this.makeRoom() } : {})
    })
    this.endpoint.onAccept((link, accepted) => {
      const listener = this.channelListener
      if (!listener || this.closed) {
        accepted.session.close()
        link.release()
        return
      }
      const channel = UdpChannel.server(link, accepted, this.channelOptions())
      this.track(channel)
      listener(channel)
    })
  }

  /** Aborts the least recently useful stranger's accepted channel (closed ones first); true if one went. */
  private makeRoom(): boolean {
    const strangers = this.options.strangers
    if (!strangers) return false
    let victim: UdpChannel | undefined
    let victimRank = Infinity
    for (const c of this.channels) {
      if (c.initiator || c.isReleased || !c.remoteSignId || !strangers.isStranger(c.remoteSignId)) continue
      // A channel already closed (lingering) costs nothing to drop; else the lowest rank.
      const rank = c.state === 'closed' ? -1 : strangers.rank(c.remoteSignId)
      if (rank < victimRank) {
        victim = c
        victimRank = rank
      }
    }
    if (!victim) return false
    strangers.evicted()
    victim.abort(new StateError('ERR_LIMIT_REACHED', 'the udp session table is full: a stranger session made room'))
    return true
  }

  private channelOptions(): UdpServerOptions {
    const o = this.options
    return {
      auth: o.auth ?? 'signid',
      ...(o.clock ? { clock: o.clock } : {}),
      ...(o.timings ? { timings: o.timings } : {}),
      ...(o.stream ? { stream: o.stream } : {}),
      ...(o.allowHalfOpen !== undefined ? { allowHalfOpen: o.allowHalfOpen } : {})
    }
  }

  private track(channel: UdpChannel): void {
    this.channels.add(channel)
    channel.once('released', () => this.channels.delete(channel))
  }

  /** Binds and answers Hellos (default 0.0.0.0, a free port). */
  listen(options: UdpListenOptions = {}): Promise<void> {
    return this.endpoint.listen(options)
  }

  get port(): number {
    return this.endpoint.port
  }

  /** `{transportType: 'udp', transportInfo: {address, port}}` for each address we listen on. */
  connectionInfo(): ConnectionInfoEntry[] {
    return this.endpoint.connectionInfo()
  }

  /** Accepted channels come here (before their `secure` event). */
  onChannel(listener: (channel: UdpChannel) => void): void {
    this.channelListener = listener
  }

  /**
   * Dials `address:port`; the channel emits `secure` once the server answered, or `close` with
   * the reason. Binds a free port first when not listening.
   * @throws InvalidArgumentError for a bad address, port or key.
   */
  dial(address: string, port: number, options: UdpDialOptions): UdpChannel {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the udp channels are closed')
    const link = this.endpoint.connect(address, port, options.clientExtension)
    const o = this.options
    const channel = UdpChannel.client(link, {
      identity: options.identity ?? o.identity,
      remoteBoxId: options.remoteBoxId,
      ...(options.remoteSignId !== undefined ? { remoteSignId: options.remoteSignId } : {}),
      auth: options.auth ?? o.auth ?? 'signid',
      ...(options.domainName !== undefined ? { domainName: options.domainName } : {}),
      ...(options.serverExtension ? { serverExtension: options.serverExtension } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
      timings: { ...o.timings, ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}) },
      ...(o.stream ? { stream: o.stream } : {}),
      ...(o.allowHalfOpen !== undefined ? { allowHalfOpen: o.allowHalfOpen } : {})
    })
    this.track(channel)
    return channel
  }

  /** Channels not yet released (open, or lingering after close). */
  get channelCount(): number {
    return this.channels.size
  }

  /**
   * Closes every channel and the socket. Channels get up to `closeLingerMs` to finish sending
   * and have their EOF acknowledged (the peer then sees a clean end); the rest are aborted (the
   * peer sees a failure EOF at once). Idempotent; resolves when the socket is closed.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    this.closed = true
    for (const channel of this.channels) if (channel.state !== 'closed') void channel.close()
    // Each channel says `flushed` once its EOF is acknowledged (or it is released): wait for
    // those events, at most closeLingerMs.
    const flushed = [...this.channels].filter((c) => !c.flushed).map((c) => new Promise<void>((resolve) => c.once('flushed', () => resolve())))
    if (flushed.length) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.all(flushed), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.closeLingerMs ?? CLOSE_LINGER_MS)))])
      clearTimeout(timer)
    }
    for (const channel of [...this.channels]) channel.abort(new StateError('ERR_CLOSED', 'the udp channels closed'))
    await this.endpoint.close()
  }
}

