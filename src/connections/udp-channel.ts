/**
 * The UDP channel: one CurveCP session on a {@link UdpLink} (transports/udp-link.ts), with the
 * message layer ({@link MessageStream}) making it a reliable, ordered byte stream. Implements
 * {@link Channel}; state, buffering before resume() and close() are the shared core's.
 *
 * Client handshake: hello-sent ──Cookie──▶ initiate-sent ──first Server Message──▶ open.
 *   Hello goes again with backoff (1 s, x1.5, jitter) until a Cookie; then every message the
 *   stream sends rides in an Initiate (each with a fresh nonce) until a Server Message arrives:
 *   the stream's own retransmission repeats the Initiate. Our first bytes ride in it.
 * Server: open at once (the endpoint created us from a valid Initiate); we answer it at once.
 *
 * UDP has no teardown of its own, so a channel lives on after its `close` event until both
 * ends have their EOF through. Its life, one field (`life`):
 *
 *   handshaking ──first Server Message──▶ open
 *   handshaking ──close() / failure / timeout─────────────────────────────────────▶ released
 *   open ──close()──▶ lingering ──our EOF acknowledged, the peer's EOF in──▶ time-wait
 *   open ──both EOFs through (the peer ended first)─────────────────────────▶ time-wait
 *   lingering ──lingerMs, or our failure EOF acknowledged───────────────────────▶ released
 *   time-wait ──timeWaitMs (we still acknowledge the peer's EOF if it comes again)──▶ released
 *   any ──failure EOF, stream failure, dead peer, abort(), endpoint closed──────▶ released
 *
 * `state` (the Channel's) is 'handshaking', 'open', or 'closed' for the last three. The peer's
 * EOF is tracked apart (`peerEof`): a success EOF that arrives before resume() is held behind the
 * data it follows.
 *
 * A little over 400 lines: one state machine; every transition above is in this file, so that it
 * reads against the diagram (options: udp-channel-options.ts; Hello retry, liveness: udp-timers.ts).
 */
import { ProtocolError } from '../errors.js'
import { AUTH_BYTES, type AcceptedInitiate, type AuthMode, type ClientHandshake } from '../curvecp/handshake.js'
import { UDP_MAX_MESSAGE_BYTES } from '../curvecp/constants.js'
import { EOF_FAILURE, EOF_SUCCESS } from '../curvecp/message-layer.js'
import { MessageStream, systemClock, type StreamClock } from '../curvecp/message-stream.js'
import { UDP_LIMITS, type PacketKind } from '../curvecp/packets.js'
import type { Session } from '../curvecp/session.js'
import type { UdpLink } from '../transports/udp-link.js'
import { ChannelCore, clientHandshake, type ChannelState } from './channel.js'
import { DEFAULT_UDP_TIMINGS, type UdpChannelTimings } from './timings.js'
import { RetryBackoff, UdpLiveness } from './udp-timers.js'
import type { UdpClientOptions, UdpServerOptions } from './udp-channel-options.js'

export type { UdpChannelTimings } from './timings.js'

/** Where a UDP channel is in its life (see the header). */
export type UdpChannelLife = 'handshaking' | 'open' | 'lingering' | 'time-wait' | 'released'

/** The peer's end of stream: none yet, a success EOF held until resume(), or received. */
type PeerEof = 'none' | 'held' | 'received'

export type { UdpClientOptions, UdpServerOptions, UdpStreamTuning } from './udp-channel-options.js'

const EMPTY = Buffer.alloc(0)
/** The parts of a message for sealParts (head, data), reused: it copies them before returning. */
const PARTS: Buffer[] = [EMPTY, EMPTY]
/** Views of the stream's head scratch, one per head length (a few: 64 for a full block). */
let viewedHead: Buffer | undefined
let headViews: Buffer[] = []
function headView(head: Buffer, headBytes: number): Buffer {
  if (head !== viewedHead) {
    viewedHead = head
    headViews = []
  }
  return (headViews[headBytes] ??= head.subarray(0, headBytes))
}

export class UdpChannel extends ChannelCore {
  /** The peer's long-term key (base64): its boxId. */
  remoteBoxId: string | undefined
  /** Counts for tests and stats. */
  readonly stats = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, hellos: 0, initiates: 0 }
  readonly stream: MessageStream
  private life: UdpChannelLife = 'handshaking'
  private peerEof: PeerEof = 'none'
  private readonly link: UdpLink
  private readonly clock: StreamClock
  private readonly timings: UdpChannelTimings
  private readonly auth: AuthMode
  private readonly allowHalfOpen: boolean
  private client: ClientHandshake | undefined
  private session: Session | undefined
  private firstHelloAt = 0
  /** In-order bytes of this turn, not yet handed on (see onStreamData). */
  private pendingData: Buffer[] = []
  private deliveryScheduled = false
  // ---- timers (the first two in udp-timers.ts) ----
  private readonly helloRetry: RetryBackoff
  private readonly liveness: UdpLiveness
  /** The handshake timeout, then the linger or time-wait deadline. */
  private deadlineTimer: unknown

  private constructor(link: UdpLink, initiator: boolean, options: UdpClientOptions | UdpServerOptions) {
    super(initiator)
    this.link = link
    this.clock = options.clock ?? systemClock
    this.timings = { ...DEFAULT_UDP_TIMINGS, ...options.timings }
    this.auth = options.auth ?? 'signid'
    this.allowHalfOpen = options.allowHalfOpen ?? false
    this.helloRetry = new RetryBackoff(this.clock, this.timings.helloRetryMs, () => this.sendHello())
    this.liveness = new UdpLiveness(this.clock, this.timings.keepaliveMs, this.timings.deadAfterMs, {
      // Only an open channel pings; a closing one has its EOF in flight, a handshake its timeout.
      silent: () => {
        if (this.state === 'open' && this.session) this.stream.ping()
      },
      dead: () => this.fail(new ProtocolError('ERR_TIMEOUT', `nothing from ${this.remote} for ${this.timings.deadAfterMs} ms`))
    })
    this.stream = new MessageStream({
      ...options.stream,
      clock: this.clock,
      started: !initiator,
      maxMessageBytes: UDP_MAX_MESSAGE_BYTES,
      transmit: (m) => this.transmit(m),
      transmitParts: (head, headBytes, data, dataBytes) => this.transmitParts(head, headBytes, data, dataBytes),
      onData: (data) => this.onStreamData(data),
      onEnd: (eof) => this.onStreamEnd(eof),
      onFinish: () => this.onStreamFinish(),
      onDrain: () => this.emit('drain'),
      onError: (err) => this.fail(err)
    })
    link.onPacket = (packet, address, port, kind) => this.onPacket(packet, address, port, kind)
    link.onClose = (err) => this.fail(err)
    // A server is established from the start; a client arms liveness when its handshake is done.
    if (!initiator) this.liveness.start()
  }

  /** Dials over `link`: sends Hello at once. */
  static client(link: UdpLink, options: UdpClientOptions): UdpChannel {
    const channel = new UdpChannel(link, true, options)
    channel.remoteSignId = options.remoteSignId
    channel.remoteBoxId = options.remoteBoxId
    try {
      channel.client = clientHandshake({
        identity: options.identity,
        remoteBoxId: options.remoteBoxId,
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
    channel.helloRetry.start()
    return channel
  }

  /** Takes over a client the endpoint accepted; answers its Initiate at once. */
  static server(link: UdpLink, accepted: AcceptedInitiate, options: UdpServerOptions = {}): UdpChannel {
    const channel = new UdpChannel(link, false, options)
    channel.session = accepted.session
    channel.remoteSignId = accepted.clientSignId
    channel.remoteBoxId = accepted.clientLongTermKey.toString('base64')
    channel.life = 'open'
    const first = channel.initiateMessage(accepted.message)
    // Listeners attach once the transport hands us out; events start on the next microtask.
    queueMicrotask(() => {
      if (channel.life !== 'open') return
      channel.emit('secure', channel.remoteSignId)
      if (first.length) channel.stream.receive(first)
      channel.stream.acknowledge()
    })
    return channel
  }

  get state(): ChannelState {
    return this.life === 'handshaking' || this.life === 'open' ? this.life : 'closed'
  }

  /** Where the channel is in its life, past `close` included (tests, stats). */
  get phase(): UdpChannelLife {
    return this.life
  }

  /** `udp:address:port` of the peer. */
  get remote(): string {
    return `udp:${this.link.address}:${this.link.port}`
  }

  /** Bytes written and not yet acknowledged by the peer (back-pressure measure). */
  get bufferedBytes(): number {
    return this.stream.bufferedBytes
  }

  /** Our first bytes ride in the Initiates the stream sends: write() them, no separate room. */
  get earlyRoom(): number {
    return 0
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

  /**
   * Several buffers as one stretch of the stream (the message layer cuts its own blocks). Like a
   * socket's writev, the buffers are kept, not copied, until the peer acknowledges them: the
   * caller (the connection layer, with frames it encoded) must not change them.
   */
  writev(buffers: Buffer[]): boolean {
    if (this.state === 'closed' || this.stream.sendState !== 'open') return false
    let ok = true
    for (const b of buffers) {
      this.stats.bytesOut += b.length
      ok = this.stream.write(b, true)
    }
    return ok
  }

  /** Starts `data` events, first with what arrived before; then the peer's EOF, if it was held. */
  override resume(): void {
    if (!this.held.holding) return
    super.resume()
    if (this.state === 'closed' || this.peerEof !== 'held') return
    this.peerEof = 'none'
    this.onStreamEnd(EOF_SUCCESS)
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
   * close(err): the peer then sees a failure EOF, else a success EOF. The `close` event fires
   * now; what we wrote still goes out for up to `lingerMs`.
   */
  protected shutdown(err?: Error): void {
    const established = this.session !== undefined
    // The peer's EOF held for resume() still counts as received.
    if (this.peerEof === 'held') this.peerEof = 'received'
    if (!established) return this.fail(err)
    this.closed('lingering', err)
    this.stream.end(err ? EOF_FAILURE : EOF_SUCCESS)
    if (this.stream.sendState === 'ended' && this.peerEof === 'received') return this.maybeDone()
    this.armDeadline(this.timings.lingerMs)
  }

  /**
   * Closes at once: the peer gets one failure EOF now (no linger), and everything is released.
   * The transport uses it when it closes. Idempotent.
   */
  abort(err?: Error): void {
    if (this.life === 'released') return
    if (this.state !== 'closed') this.closed('lingering', err)
    if (this.session) this.stream.abort()
    this.release()
  }

  /** Our side is through: EOF acknowledged, or released (`flushed` fires when it becomes so). */
  get flushed(): boolean {
    return this.life === 'released' || this.stream.sendState === 'ended'
  }

  /** Released: no timer, no routing left (tests). */
  get isReleased(): boolean {
    return this.life === 'released'
  }

  // ---------------------------------------------------------------------------------------------
  // Packets

  private transmit(message: Buffer): void {
    if (this.life === 'released') return
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

  /** A message as head + data: sealed straight into the packet (no message buffer between). */
  private transmitParts(head: Buffer, headBytes: number, data: Buffer | readonly Buffer[], dataBytes: number): void {
    if (this.life === 'released') return
    const parts = Buffer.isBuffer(data) ? null : (data as readonly Buffer[])
    if (!this.session) return this.transmit(Buffer.concat([head.subarray(0, headBytes), ...(parts ?? [data as Buffer])]))
    PARTS[0] = headView(head, headBytes)
    if (parts) for (let i = 0; i < parts.length; i++) PARTS[i + 1] = parts[i] as Buffer
    else PARTS[1] = data as Buffer
    const packet = this.session.sealParts(PARTS, headBytes + dataBytes)
    PARTS.length = 2
    PARTS[1] = EMPTY
    this.stats.packetsOut++
    this.link.send(packet)
  }

  /** A datagram the endpoint routed here; `kind` is the endpoint's reading of its magic. */
  private onPacket(packet: Buffer, address: string, port: number, kind: PacketKind): void {
    if (this.life === 'released') return
    this.stats.packetsIn++
    let message: Buffer | null = null
    if (this.session) {
      // In place: the datagram is ours alone (each arrives in its own buffer, read once).
      if (kind === 'client-message' || kind === 'server-message') message = this.session.open(packet, true)
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
        if ((this.life as UdpChannelLife) === 'released') return
      } else {
        return void this.stats.dropped++
      }
    } else {
      return void this.stats.dropped++
    }
    // One clock reading per datagram, for liveness and the stream's RTT and give-up clocks.
    const now = this.clock.now()
    this.liveness.heard(now)
    this.stream.receive(message, now)
  }

  private onCookie(packet: Buffer): void {
    const client = this.client as ClientHandshake
    // handleCookie also builds an Initiate (with no message); ours come from the stream.
    if (!client.handleCookie(packet, EMPTY)) return void this.stats.dropped++
    this.helloRetry.stop()
    const rtt = this.stats.hellos === 1 ? this.clock.now() - this.firstHelloAt : undefined
    const room = client.initiateRoom
    // With our extension the Initiate's message is padded after auth: room for whole 16s.
    this.stream.start(this.auth === 'signid' ? Math.floor(room / 16) * 16 : room, rtt)
    if (this.stream.bufferedBytes === 0) this.stream.ping()
  }

  private established(): void {
    this.clearDeadline()
    this.liveness.heard()
    this.liveness.start()
    this.stream.setMaxMessageBytes(UDP_MAX_MESSAGE_BYTES)
    if (this.life === 'handshaking') {
      this.life = 'open'
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

  /**
   * In-order bytes from the stream: gathered over the turn and handed on once, after its I/O,
   * as one chunk. Each datagram carries at most 1 KiB; handed on one by one, a frame above
   * straddles several `data` events and every chunk pays the connection layer's dispatch. The
   * delivery is queued before the stream's pump, so that an answer written in it goes this turn.
   */
  private onStreamData(data: Buffer): void {
    if (this.life !== 'open') return
    this.stats.bytesIn += data.length
    this.pendingData.push(data)
    if (this.deliveryScheduled) return
    this.deliveryScheduled = true
    this.clock.setImmediate(this.deliverPending)
  }

  private readonly deliverPending = (): void => {
    this.deliveryScheduled = false
    const chunks = this.pendingData
    if (chunks.length === 0) return
    this.pendingData = []
    if (this.life !== 'open') return
    this.deliverData(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks))
  }

  private onStreamEnd(eof: number): void {
    // The bytes before the EOF go first.
    this.deliverPending()
    // A success EOF waits for resume() behind the data it follows; a failure acts at once.
    if (this.held.holding && this.state !== 'closed' && eof !== EOF_FAILURE) {
      this.peerEof = 'held'
      return
    }
    this.peerEof = 'received'
    if (eof === EOF_FAILURE) {
      if (this.state === 'closed') return this.release()
      return this.fail(new ProtocolError('ERR_PROTOCOL', `${this.remote} ended the stream with a failure`))
    }
    if (this.state !== 'closed') {
      this.emit('end')
      // Like a net.Socket without allowHalfOpen: the peer's end ends our side (after what is queued).
      if ((this.state as ChannelState) !== 'closed' && !this.allowHalfOpen) return void this.close()
    }
    this.maybeDone()
  }

  private onStreamFinish(): void {
    this.emit('flushed')
    if (this.peerEof === 'received') return this.maybeDone()
    // Closed with an error: the peer has our failure EOF; nothing more to wait for.
    if (this.state === 'closed' && this.closeError) this.release()
  }

  /** Both EOFs are through: the channel is done (`close`), and lingers in time-wait. */
  private maybeDone(): void {
    if (this.stream.sendState !== 'ended' || this.peerEof !== 'received' || this.life === 'released') return
    this.closed('time-wait')
    // Time-wait: the peer may not have our acknowledgement of its EOF yet.
    this.armDeadline(this.timings.timeWaitMs)
  }

  /** A failure: `close` with the error, everything released now. */
  private fail(err?: Error): void {
    if (this.state !== 'closed') this.closed('lingering', err)
    this.release()
  }

  /** Moves to a closed life; the first time, `close` fires (with the first reason given). */
  private closed(life: 'lingering' | 'time-wait', err?: Error): void {
    const wasClosed = this.state === 'closed'
    if (this.life !== 'released') this.life = life
    if (wasClosed) return
    this.helloRetry.stop()
    this.clearDeadline()
    this.emitClose(err)
  }

  /** Forgets the session and stops routing; no packet is sent after this. Idempotent. */
  private release(): void {
    if (this.life === 'released') return
    this.life = 'released'
    this.helloRetry.stop()
    this.clearDeadline()
    this.liveness.stop()
    this.stream.destroy()
    this.client?.fail()
    this.session?.close()
    this.link.release()
    this.emit('flushed')
    this.emit('released')
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  /** Sends a Hello while the handshake waits for a Cookie (RetryBackoff repeats it). */
  private sendHello(): boolean {
    const client = this.client as ClientHandshake
    if (this.life === 'released' || client.state !== 'hello-sent' && client.state !== 'new') return false
    if (this.stats.hellos === 0) this.firstHelloAt = this.clock.now()
    this.stats.hellos++
    this.stats.packetsOut++
    this.link.send(client.hello())
    return true
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
}
