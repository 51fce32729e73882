/**
 * A secure channel over UDP: one CurveCP session on a {@link UdpLink}, with the message layer
 * ({@link MessageStream}) making it a reliable, ordered byte stream. Same public surface as the
 * TCP {@link SecureChannel}, so the connection layer takes either:
 * events `secure` (remote signId), `data` (Buffer), `drain`, `close` (error or undefined);
 * `write()`, `close()`, `initiator`, `remoteSignId`, `state`, `bufferedBytes`.
 *
 * Client:  hello-sent ──Cookie──▶ initiate-sent ──first Server Message──▶ open
 *   Hello goes again with backoff (1 s, x1.5, jitter) until a Cookie; then every message the
 *   stream sends rides in an Initiate (each with a fresh nonce) until a Server Message arrives:
 *   the stream's own retransmission repeats the Initiate. Our first bytes ride in it.
 * Server:  open at once (the endpoint created us from a valid Initiate); we answer it at once.
 * Both:    open ──close() or the peer's EOF──▶ closed (`close` event), then a bounded linger in
 *   which our EOF and unacknowledged data still go out and the peer's EOF is acknowledged again.
 *
 * `UdpTransport` is the entry point for the connection manager: one UDP endpoint per node that
 * listens and dials, handing out UdpChannels.
 */
import { EventEmitter } from 'node:events'
import { HeldData } from './held-data.js'
import { ProtocolError, StateError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import { ClientHandshake, AUTH_BYTES, type AcceptedInitiate, type AuthMode } from '../curvecp/handshake.js'
import { UDP_MAX_MESSAGE_BYTES } from '../curvecp/constants.js'
import { EOF_FAILURE, EOF_SUCCESS } from '../curvecp/message-layer.js'
import { MessageStream, systemClock, type MessageStreamOptions, type StreamClock } from '../curvecp/message-stream.js'
import { UDP_LIMITS, packetKind } from '../curvecp/packets.js'
import type { Session } from '../curvecp/session.js'
import type { ConnectionInfoEntry } from '../transports/connection-info.js'
import { UdpEndpoint, type DatagramSocket, type UdpLink, type UdpListenOptions } from '../transports/udp.js'

export type ChannelState = 'handshaking' | 'open' | 'closed'

/** Every timer of a UDP channel; tests pass small values. */
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

/** Bytes a channel holds before `resume()` (like the TCP channel); more closes it. */
export const PAUSED_BUFFER_BYTES = 1024 * 1024

export const DEFAULT_UDP_TIMINGS: UdpChannelTimings = {
  handshakeTimeoutMs: 10_000,
  helloRetryMs: 1_000,
  keepaliveMs: 2_000,
  deadAfterMs: 8_000,
  lingerMs: 10_000,
  timeWaitMs: 2_000
}

/** Tuning passed through to the message stream (tests, benchmarks). */
export type UdpStreamTuning = Pick<
  MessageStreamOptions,
  'sendWindowBytes' | 'receiveWindowBytes' | 'initialWindowBlocks' | 'initialRtoMs' | 'minRtoMs' | 'maxRtoMs' | 'giveUpMs' | 'highWaterBytes' | 'maxBlockBytes'
>

/** The public surface shared with the TCP SecureChannel. */
export interface ChannelLike extends EventEmitter {
  readonly initiator: boolean
  state: ChannelState
  remoteSignId: string | undefined
  readonly bufferedBytes: number
  write(data: Uint8Array): boolean
  writev(buffers: Buffer[]): boolean
  /** Starts `data` events (a channel starts paused, holding what arrives). */
  resume(): void
  close(err?: Error): void
}

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

const EMPTY = Buffer.alloc(0)

export class UdpChannel extends EventEmitter implements ChannelLike {
  readonly initiator: boolean
  state: ChannelState = 'handshaking'
  remoteSignId: string | undefined
  /** The peer's long-term key (base64): its boxId. */
  remoteBoxId: string | undefined
  /** Counts for tests and stats. */
  readonly stats = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, hellos: 0, initiates: 0 }
  readonly stream: MessageStream
  private readonly link: UdpLink
  private readonly clock: StreamClock
  private readonly timings: UdpChannelTimings
  private readonly auth: AuthMode
  private readonly allowHalfOpen: boolean
  private client: ClientHandshake | undefined
  private session: Session | undefined
  private released = false
  private closeError: Error | undefined
  private peerEnded = false
  /** Data held until resume(); undefined once flowing. */
  private readonly held = new HeldData(PAUSED_BUFFER_BYTES)
  /** The peer's EOF, held until resume() like its data. */
  private endPending: number | undefined
  private lastReceivedAt: number
  private firstHelloAt = 0
  // ---- timers (all here) ----
  private helloTimer: unknown
  private helloWaitMs = 0
  private deadlineTimer: unknown
  private livenessTimer: unknown

  private constructor(link: UdpLink, initiator: boolean, options: UdpClientOptions | UdpServerOptions) {
    super()
    this.link = link
    this.initiator = initiator
    this.clock = options.clock ?? systemClock
    this.timings = { ...DEFAULT_UDP_TIMINGS, ...options.timings }
    this.auth = options.auth ?? 'signid'
    this.allowHalfOpen = options.allowHalfOpen ?? false
    this.lastReceivedAt = this.clock.now()
    this.stream = new MessageStream({
      ...options.stream,
      clock: this.clock,
      started: !initiator,
      maxMessageBytes: UDP_MAX_MESSAGE_BYTES,
      transmit: (m) => this.transmit(m),
      onData: (data) => this.onStreamData(data),
      onEnd: (eof) => this.onStreamEnd(eof),
      onFinish: () => this.onStreamFinish(),
      onDrain: () => this.emit('drain'),
      onError: (err) => this.fail(err)
    })
    link.onPacket = (packet, address, port) => this.onPacket(packet, address, port)
    link.onClose = (err) => this.fail(err)
    // A server is established from the start; a client arms liveness when its handshake is done.
    if (!initiator) this.armLiveness()
  }

  /** Dials over `link`: sends Hello at once. */
  static client(link: UdpLink, options: UdpClientOptions): UdpChannel {
    const channel = new UdpChannel(link, true, options)
    channel.remoteSignId = options.remoteSignId
    channel.remoteBoxId = options.remoteBoxId
    try {
      channel.client = new ClientHandshake({
        identity: options.identity,
        serverLongTermKey: Buffer.from(options.remoteBoxId, 'base64'),
        limits: UDP_LIMITS,
        auth: channel.auth,
        clientExtension: link.clientExtension,
        ...(options.serverExtension ? { serverExtension: options.serverExtension } : {}),
        ...(options.domainName !== undefined ? { domainName: options.domainName } : {})
      })
    } catch (err) {
      link.release()
      channel.stream.destroy()
      throw err
    }
    channel.deadlineTimer = channel.clock.setTimeout(
      () => channel.fail(new ProtocolError('ERR_HANDSHAKE', `udp handshake with ${channel.remote} timed out after ${channel.timings.handshakeTimeoutMs} ms`)),
      channel.timings.handshakeTimeoutMs
    )
    channel.sendHello()
    return channel
  }

  /** Takes over a client the endpoint accepted; answers its Initiate at once. */
  static server(link: UdpLink, accepted: AcceptedInitiate, options: UdpServerOptions = {}): UdpChannel {
    const channel = new UdpChannel(link, false, options)
    channel.session = accepted.session
    channel.remoteSignId = accepted.clientSignId
    channel.remoteBoxId = accepted.clientLongTermKey.toString('base64')
    channel.state = 'open'
    const first = channel.initiateMessage(accepted.message)
    // Listeners attach once the transport hands us out; events start on the next microtask.
    queueMicrotask(() => {
      if (channel.state !== 'open') return
      channel.emit('secure', channel.remoteSignId)
      if (first.length) channel.stream.receive(first)
      channel.stream.acknowledge()
    })
    return channel
  }

  /** `udp:address:port` of the peer. */
  get remote(): string {
    return `udp:${this.link.address}:${this.link.port}`
  }

  /** Bytes written and not yet acknowledged by the peer (back-pressure measure). */
  get bufferedBytes(): number {
    return this.stream.bufferedBytes
  }

  /** Smoothed round-trip time in ms. */
  get rttMs(): number {
    return this.stream.rttMs
  }

  /**
   * Sends bytes on the stream. Returns false when the caller should wait for `drain`.
   * Bytes written before the handshake completes are held and the first ones ride in the Initiate.
   */
  write(data: Uint8Array): boolean {
    if (this.state === 'closed' || this.stream.sendState !== 'open') return false
    this.stats.bytesOut += data.length
    return this.stream.write(data)
  }

  /** Several buffers as one stretch of the stream (the message layer cuts its own blocks). */
  writev(buffers: Buffer[]): boolean {
    if (this.state === 'closed' || this.stream.sendState !== 'open') return false
    let ok = true
    for (const b of buffers) {
      this.stats.bytesOut += b.length
      ok = this.stream.write(b)
    }
    return ok
  }

  /**
   * Starts `data` events, first with what arrived before. A channel starts paused, so that
   * nothing is lost between the handshake and its owner attaching listeners.
   */
  resume(): void {
    if (!this.held.holding) return
    this.held.release(
      (data) => this.emit('data', data),
      () => this.state !== 'closed'
    )
    if (this.state === 'closed') return
    const eof = this.endPending
    this.endPending = undefined
    if (eof !== undefined) this.onStreamEnd(eof)
  }

  /**
   * Ends our side after what was written (a success EOF); the peer's data still arrives until
   * its EOF, then the channel closes. Idempotent.
   */
  end(): void {
    if (this.state === 'closed') return
    this.stream.end(EOF_SUCCESS)
  }

  /**
   * Closes the channel; `err` says why (the peer then sees a failure EOF). The `close` event
   * fires now; what we wrote still goes out for up to `lingerMs`. Idempotent.
   */
  close(err?: Error): void {
    if (this.state === 'closed') return
    this.closeError ??= err
    const established = this.session !== undefined
    // The peer's EOF held for resume() still counts as received.
    if (this.endPending !== undefined) this.peerEnded = true
    this.endPending = undefined
    this.finish(err)
    if (!established) return this.release()
    this.stream.end(err ? EOF_FAILURE : EOF_SUCCESS)
    if (this.stream.sendState === 'ended' && this.peerEnded) return this.maybeDone()
    this.armDeadline(this.timings.lingerMs)
  }

  /**
   * Closes at once: the peer gets one failure EOF now (no linger), and everything is released.
   * The transport uses it when it closes. Idempotent.
   */
  abort(err?: Error): void {
    if (this.released) return
    if (this.state !== 'closed') this.finish(err)
    if (this.session) this.stream.abort()
    this.release()
  }

  /** Our side is through: EOF acknowledged, or released. */
  get flushed(): boolean {
    return this.released || this.stream.sendState === 'ended'
  }

  // ---------------------------------------------------------------------------------------------
  // Packets

  private transmit(message: Buffer): void {
    if (this.released) return
    let packet: Buffer
    if (this.session) {
      packet = this.session.seal(message)
    } else if (this.client && this.client.state === 'initiate-sent') {
      packet = this.client.initiate(message)
      this.stats.initiates++
    } else {
      return
    }
    this.stats.packetsOut++
    this.link.send(packet)
  }

  private onPacket(packet: Buffer, address: string, port: number): void {
    if (this.released) return
    this.stats.packetsIn++
    const kind = packetKind(packet)
    let message: Buffer | null = null
    if (this.session) {
      if (kind === 'client-message' || kind === 'server-message') message = this.session.open(packet)
      else if (kind === 'initiate') message = this.initiateMessageOrNull(this.session.openInitiate(packet))
      if (!message) return void this.stats.dropped++
      if (!this.initiator) {
        // An authenticated, fresh packet: the client may have moved (NAT rebinding).
        this.link.address = address
        this.link.port = port
      }
    } else if (this.client) {
      if (kind === 'cookie' && this.client.state === 'hello-sent') return this.onCookie(packet)
      if (kind === 'server-message' && this.client.state === 'initiate-sent') {
        const done = this.client.handleFirstServerMessage(packet)
        if (!done) return void this.stats.dropped++
        this.session = done.session
        this.established()
        message = done.message
        if (this.state === 'closed' && this.released) return
      } else {
        return void this.stats.dropped++
      }
    } else {
      return void this.stats.dropped++
    }
    this.lastReceivedAt = this.clock.now()
    this.stream.receive(message)
  }

  private onCookie(packet: Buffer): void {
    const client = this.client as ClientHandshake
    // handleCookie also builds an Initiate (with no message); ours come from the stream.
    if (!client.handleCookie(packet, EMPTY)) return void this.stats.dropped++
    this.clearHello()
    const rtt = this.stats.hellos === 1 ? this.clock.now() - this.firstHelloAt : undefined
    const room = client.initiateRoom
    // With our extension the Initiate's message is padded after auth: room for whole 16s.
    this.stream.start(this.auth === 'signid' ? Math.floor(room / 16) * 16 : room, rtt)
    if (this.stream.bufferedBytes === 0) this.stream.ping()
  }

  private established(): void {
    this.clearDeadline()
    this.lastReceivedAt = this.clock.now()
    this.armLiveness()
    this.stream.setMaxMessageBytes(UDP_MAX_MESSAGE_BYTES)
    if (this.state === 'handshaking') {
      this.state = 'open'
      this.emit('secure', this.remoteSignId)
    }
  }

  /** The message layer's message inside an Initiate's message (after our auth extension). */
  private initiateMessage(m: Buffer): Buffer {
    // With auth 'signid' the accepted message starts after the extension, and the client padded
    // extension + message to 16: the message layer's message is the whole 16s that remain.
    if (this.auth !== 'signid') return m
    return m.subarray(0, Math.floor(m.length / 16) * 16)
  }

  private initiateMessageOrNull(inner: Buffer | null): Buffer | null {
    if (!inner) return null
    if (this.auth !== 'signid') return inner
    if (inner.length < AUTH_BYTES) return null
    return this.initiateMessage(inner.subarray(AUTH_BYTES))
  }

  // ---------------------------------------------------------------------------------------------
  // Stream events

  private onStreamData(data: Buffer): void {
    if (this.state !== 'open') return
    this.stats.bytesIn += data.length
    if (!this.held.holding) return void this.emit('data', data)
    if (!this.held.hold(data)) this.close(new ProtocolError('ERR_PROTOCOL', `${this.remote} sent more than ${PAUSED_BUFFER_BYTES} bytes before the channel was resumed`))
  }

  private onStreamEnd(eof: number): void {
    // A success EOF waits for resume() behind the data it follows; a failure acts at once.
    if (this.held.holding && this.state !== 'closed' && eof !== EOF_FAILURE) {
      this.endPending = eof
      return
    }
    this.peerEnded = true
    if (eof === EOF_FAILURE) {
      if (this.state === 'closed') return this.release()
      return this.fail(new ProtocolError('ERR_PROTOCOL', `${this.remote} ended the stream with a failure`))
    }
    if (this.state !== 'closed') {
      this.emit('end')
      // Like a net.Socket without allowHalfOpen: the peer's end ends our side (after what is queued).
      if ((this.state as ChannelState) !== 'closed' && !this.allowHalfOpen) return this.close()
    }
    this.maybeDone()
  }

  private onStreamFinish(): void {
    if (this.peerEnded) return this.maybeDone()
    // Closed with an error: the peer has our failure EOF; nothing more to wait for.
    if (this.state === 'closed' && this.closeError) this.release()
  }

  /** Both EOFs are through: the channel is done (`close`), and lingers in time-wait. */
  private maybeDone(): void {
    if (this.stream.sendState !== 'ended' || !this.peerEnded || this.released) return
    if (this.state !== 'closed') this.finish()
    // Time-wait: the peer may not have our acknowledgement of its EOF yet.
    this.armDeadline(this.timings.timeWaitMs)
  }

  /** A failure: `close` with the error, everything released now. */
  private fail(err: Error): void {
    if (this.state !== 'closed') this.finish(err)
    this.release()
  }

  private finish(err?: Error): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.closeError ??= err
    this.clearHello()
    this.clearDeadline()
    this.emit('close', this.closeError)
  }

  /** Forgets the session and stops routing; no packet is sent after this. Idempotent. */
  private release(): void {
    if (this.released) return
    this.released = true
    this.clearHello()
    this.clearDeadline()
    this.clearLiveness()
    this.stream.destroy()
    this.client?.fail()
    this.session?.close()
    this.link.release()
    this.emit('released')
  }

  /** Released: no timer, no routing left (tests). */
  get isReleased(): boolean {
    return this.released
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  private sendHello(): void {
    const client = this.client as ClientHandshake
    if (this.released || client.state !== 'hello-sent' && client.state !== 'new') return
    if (this.stats.hellos === 0) this.firstHelloAt = this.clock.now()
    this.stats.hellos++
    this.stats.packetsOut++
    this.link.send(client.hello())
    this.helloWaitMs = this.helloWaitMs ? this.helloWaitMs * 1.5 : this.timings.helloRetryMs
    const wait = this.helloWaitMs + Math.random() * this.helloWaitMs
    this.helloTimer = this.clock.setTimeout(() => {
      this.helloTimer = undefined
      this.sendHello()
    }, wait)
  }

  private clearHello(): void {
    if (this.helloTimer !== undefined) this.clock.clearTimeout(this.helloTimer)
    this.helloTimer = undefined
  }

  private armDeadline(ms: number): void {
    this.clearDeadline()
    this.deadlineTimer = this.clock.setTimeout(() => {
      this.deadlineTimer = undefined
      this.release()
    }, ms)
  }

  private clearDeadline(): void {
    if (this.deadlineTimer !== undefined) this.clock.clearTimeout(this.deadlineTimer)
    this.deadlineTimer = undefined
  }

  /** One timer: a ping after keepaliveMs of silence, the end after deadAfterMs. */
  private armLiveness(): void {
    const now = this.clock.now()
    const pingAt = this.lastReceivedAt + this.timings.keepaliveMs
    const deadAt = this.lastReceivedAt + this.timings.deadAfterMs
    const at = pingAt > now ? pingAt : Math.min(deadAt, now + this.timings.keepaliveMs)
    this.livenessTimer = this.clock.setTimeout(() => {
      this.livenessTimer = undefined
      if (this.released) return
      const t = this.clock.now()
      if (t - this.lastReceivedAt >= this.timings.deadAfterMs) {
        return this.fail(new ProtocolError('ERR_TIMEOUT', `nothing from ${this.remote} for ${this.timings.deadAfterMs} ms`))
      }
      // Only an open channel pings; a closing one has its EOF in flight, a handshake its timeout.
      if (t - this.lastReceivedAt >= this.timings.keepaliveMs && this.state === 'open' && this.session) this.stream.ping()
      this.armLiveness()
    }, Math.max(1, at - now))
  }

  private clearLiveness(): void {
    if (this.livenessTimer !== undefined) this.clock.clearTimeout(this.livenessTimer)
    this.livenessTimer = undefined
  }
}

// -----------------------------------------------------------------------------------------------
// Transport: the connection manager's entry point.
// -----------------------------------------------------------------------------------------------

export interface UdpTransportOptions {
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
}

/** Default of {@link UdpTransportOptions.closeLingerMs}. */
export const CLOSE_LINGER_MS = 500

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
 * accepted channels from `onChannel()`. Every channel is a {@link UdpChannel}.
 */
export class UdpTransport {
  readonly endpoint: UdpEndpoint
  private readonly options: UdpTransportOptions
  private channelListener: ((channel: UdpChannel) => void) | undefined
  private readonly channels = new Set<UdpChannel>()
  private closed = false
  private closing: Promise<void> | undefined

  constructor(options: UdpTransportOptions) {
    this.options = options
    this.endpoint = new UdpEndpoint({
      identity: options.identity,
      auth: options.auth ?? 'signid',
      ...(options.serverExtension ? { serverExtension: options.serverExtension } : {}),
      ...(options.domainName !== undefined ? { domainName: options.domainName } : {}),
      ...(options.maxSessions !== undefined ? { maxSessions: options.maxSessions } : {}),
      ...(options.wrapSocket ? { wrapSocket: options.wrapSocket } : {})
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
    if (this.closed) throw new StateError('ERR_CLOSED', 'the udp transport is closed')
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
    for (const channel of this.channels) if (channel.state !== 'closed') channel.close()
    const deadline = Date.now() + (this.options.closeLingerMs ?? CLOSE_LINGER_MS)
    while (Date.now() < deadline && [...this.channels].some((c) => !c.flushed)) await new Promise((resolve) => setTimeout(resolve, 5))
    for (const channel of [...this.channels]) channel.abort(new StateError('ERR_CLOSED', 'the udp transport closed'))
    await this.endpoint.close()
  }
}

/** Re-exported for the connection manager. */
export { udpTarget } from '../transports/udp.js'
