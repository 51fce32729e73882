/**
 * The TCP channel: one CurveCP session over one PacketSocket (length-prefixed packets on a TCP
 * connection), implementing {@link Channel}. The client's first bytes ride in the Initiate (no
 * extra round trip); the server's first Message, after which the client may send more, is its
 * answer to them when that comes within a turn, else an empty one (see resume()).
 *
 * On a stream transport every packet is expected: one that does not open (tampered, replayed,
 * out of place) means the stream is under attack or broken, so the channel closes with a
 * ProtocolError and the connection layer dials again. The node carries on.
 *
 * State, buffering before resume() and close() are the shared core's (channel.ts).
 */
import { ProtocolError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import type { ClientHandshake, ServerHandshake } from '../curvecp/handshake.js'
import { packetKind, type PacketLimits } from '../curvecp/packets.js'
import { Session } from '../curvecp/session.js'
import type { PacketSocket } from '../transports/packet-socket.js'
import { TCP_MAX_PACKET_BYTES } from '../transports/tcp.js'
import { ChannelCore, clientHandshake, type ChannelState } from './channel.js'
import { SPARE_ROOM_MIN_BYTES, takeSpareRoom } from './frames.js'
import { DEFAULT_TIMINGS } from './timings.js'

/** Smallest packet opened in place (see onPacket): below, the copy is cheap and pins nothing. */
const IN_PLACE_MIN_BYTES = 1024

/** Bytes a channel buffers before its handshake completes; above this write() says false. */
export const PRE_HANDSHAKE_BUFFER_BYTES = 1024 * 1024

export interface ClientChannelOptions {
  identity: IdentityLike
  /** The signId we mean to reach; its boxId is the server key S we require. */
  remoteSignId: string
  remoteBoxId: string
  limits: PacketLimits
  /** Default: DEFAULT_TIMINGS.handshakeTimeoutMs. */
  handshakeTimeoutMs?: number
}

export interface ServerChannelOptions {
  handshake: ServerHandshake
  handshakeTimeoutMs?: number
}

export class TcpChannel extends ChannelCore {
  readonly socket: PacketSocket
  private phase: ChannelState = 'handshaking'
  /** Counts for tests and stats. */
  readonly stats = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 }
  private session: Session | undefined
  private client: ClientHandshake | undefined
  private server: ServerHandshake | undefined
  private pending: Buffer[] = []
  private pendingBytes = 0
  private timer: NodeJS.Timeout | undefined
  private helloAnswered = false
  /** Server: the first Message is still owed (see serverStep); any packet sent pays it. */
  private firstMessageOwed = false
  /** Room the socket wants before each sealed packet (its length prefix); 0: plain send(). */
  private readonly headroom: number
  /** writev's packet being gathered. */
  private parts: Buffer[] = []
  private partsBytes = 0
  /**
   * Within writev: its first sealed packet, held back. The socket is corked only for a second
   * one (a ping-pong's writev makes one packet: corking it cost a pass through the socket's
   * buffered-write path per write).
   */
  private gathering = false
  private heldPacket: Buffer | undefined
  private corked = false

  private constructor(socket: PacketSocket, initiator: boolean, handshakeTimeoutMs: number) {
    super(initiator)
    this.socket = socket
    this.headroom = socket.sendFramed ? (socket.headroom ?? 0) : 0
    socket.onPacket((packet) => this.onPacket(packet))
    socket.onDrain(() => this.emit('drain'))
    socket.onClose((err) => this.finish(err))
    this.timer = setTimeout(() => void this.close(new ProtocolError('ERR_HANDSHAKE', `handshake with ${socket.remote} timed out after ${handshakeTimeoutMs} ms`)), handshakeTimeoutMs)
    this.timer.unref()
  }

  /** Dials: sends Hello at once. */
  static client(socket: PacketSocket, options: ClientChannelOptions): TcpChannel {
    const channel = new TcpChannel(socket, true, options.handshakeTimeoutMs ?? DEFAULT_TIMINGS.handshakeTimeoutMs)
    channel.remoteSignId = options.remoteSignId
    channel.client = clientHandshake({ identity: options.identity, remoteBoxId: options.remoteBoxId, limits: options.limits, auth: 'signid' })
    channel.sendPacket(channel.client.hello())
    return channel
  }

  /** Answers: waits for a Hello. */
  static server(socket: PacketSocket, options: ServerChannelOptions): TcpChannel {
    const channel = new TcpChannel(socket, false, options.handshakeTimeoutMs ?? DEFAULT_TIMINGS.handshakeTimeoutMs)
    channel.server = options.handshake
    return channel
  }

  get state(): ChannelState {
    return this.phase
  }

  get remote(): string {
    return this.socket.remote
  }

  /** Room for application bytes in the Initiate (0 once it is sent, or on the server side). */
  get earlyRoom(): number {
    return this.client && this.client.state !== 'initiate-sent' && this.client.state !== 'established' ? this.client.initiateRoom : 0
  }

  /** Bytes waiting in the socket (back-pressure measure). */
  get bufferedBytes(): number {
    return this.socket.bufferedBytes + this.pendingBytes
  }

  /**
   * Sends bytes on the stream. Returns false when the caller should wait for `drain`.
   * Bytes written before the handshake completes are held (bounded) and sent when it does.
   */
  write(data: Uint8Array): boolean {
    if (this.phase === 'closed') return false
    if (!this.session) {
      const copy = Buffer.from(data)
      this.pending.push(copy)
      this.pendingBytes += copy.length
      return this.pendingBytes < PRE_HANDSHAKE_BUFFER_BYTES
    }
    const max = this.session.maxMessage
    let ok = true
    for (let at = 0; at < data.length; at += max) {
      ok = this.sendSealed(this.session.seal(data.subarray(at, Math.min(at + max, data.length)), this.headroom))
    }
    this.stats.bytesOut += data.length
    return ok
  }

  /**
   * Sends several buffers as one stretch of the stream, packed into as few packets as fit and
   * written in one system call where the socket allows. A buffer is never copied when a packet
   * can be sealed from it directly.
   */
  writev(buffers: Buffer[]): boolean {
    if (this.phase === 'closed') return false
    const session = this.session
    if (!session) {
      let ok = true
      for (const b of buffers) ok = this.write(b)
      return ok
    }
    const max = session.maxMessage
    let ok = true
    this.gathering = true
    try {
      ok = this.gather(session, buffers, max)
    } finally {
      this.gathering = false
      const held = this.heldPacket
      this.heldPacket = undefined
      if (held) ok = this.sendFramed(held)
      if (this.corked) {
        this.corked = false
        this.socket.uncork?.()
      }
    }
    return ok
  }

  private gather(session: Session, buffers: Buffer[], max: number): boolean {
    let ok = true
    for (const buffer of buffers) {
      // A frame its sender gave up, with room for a packet around it: sealed where it lies, in a
      // packet of its own (no second buffer, no copy). What was gathered goes first, in order.
      if (buffer.length >= SPARE_ROOM_MIN_BYTES && buffer.length <= max && takeSpareRoom(buffer) >= Session.roomFor(this.headroom)) {
        if (this.partsBytes) ok = this.sealParts(session)
        this.stats.bytesOut += buffer.length
        ok = this.sendSealed(session.sealInPlace(buffer, this.headroom))
        continue
      }
      let at = 0
      // A buffer that would fit whole in a fresh packet is not split to top up this one: the
      // packet is sealed as it is, and the buffer gets a packet of its own (no stitching copy).
      if (this.partsBytes && this.partsBytes + buffer.length > max && buffer.length <= max) ok = this.sealParts(session)
      while (at < buffer.length) {
        const take = Math.min(max - this.partsBytes, buffer.length - at)
        this.parts.push(at === 0 && take === buffer.length ? buffer : buffer.subarray(at, at + take))
        this.partsBytes += take
        at += take
        if (this.partsBytes === max) ok = this.sealParts(session)
      }
    }
    if (this.partsBytes) ok = this.sealParts(session)
    return ok
  }

  /** Seals the pieces gathered by writev into one packet (copied once, straight into it) and sends it. */
  private sealParts(session: Session): boolean {
    const parts = this.parts
    const bytes = this.partsBytes
    this.stats.bytesOut += bytes
    this.parts = []
    this.partsBytes = 0
    return this.sendSealed(parts.length === 1 ? session.seal(parts[0] as Buffer, this.headroom) : session.sealParts(parts, bytes, this.headroom))
  }

  private sendPacket(packet: Buffer): boolean {
    this.stats.packetsOut++
    return this.socket.send(packet)
  }

  /** A packet sealed with `headroom` bytes before it: the socket frames it in place, one write. */
  private sendSealed(buffer: Buffer): boolean {
    this.firstMessageOwed = false
    if (!this.headroom) return this.sendPacket(buffer)
    if (this.gathering) {
      // The first is held; a second corks the socket so that both go in one write (see heldPacket).
      const held = this.heldPacket
      this.heldPacket = buffer
      if (!held) return true
      if (!this.corked) {
        this.corked = true
        this.socket.cork?.()
      }
      return this.sendFramed(held)
    }
    return this.sendFramed(buffer)
  }

  private sendFramed(buffer: Buffer): boolean {
    this.stats.packetsOut++
    return this.socket.sendFramed!(buffer)
  }

  private onPacket(packet: Buffer): void {
    if (this.phase === 'closed') return
    this.stats.packetsIn++
    if (this.session && this.phase === 'open') {
      // In place (no allocation) when the packet is ours alone and not small: the message is
      // then a view that keeps the packet's whole buffer (a socket read, or the reassembly)
      // alive, and only so is that at most about twice the bytes held (the buffer bounds count).
      const inPlace = packet.length >= IN_PLACE_MIN_BYTES && packet.length * 2 >= packet.buffer.byteLength
      const data = this.session.open(packet, inPlace)
      if (!data) return void this.close(new ProtocolError('ERR_PROTOCOL', `dropped a packet from ${this.socket.remote} that does not open (tampered, replayed or foreign); closing the channel`))
      this.stats.bytesIn += data.length
      if (data.length) this.deliverData(data)
      return
    }
    if (this.client) return this.clientStep(packet)
    if (this.server) return this.serverStep(packet)
  }

  private clientStep(packet: Buffer): void {
    const client = this.client as ClientHandshake
    if (client.state === 'hello-sent') {
      // The first bytes the application wrote ride in the Initiate.
      const first = this.takePending(client.initiateRoom)
      const initiate = client.handleCookie(packet, first)
      if (!initiate) return void this.close(new ProtocolError('ERR_HANDSHAKE', `${this.socket.remote} answered with something other than a Cookie from the expected server key`))
      this.stats.bytesOut += first.length
      this.sendPacket(initiate)
      return
    }
    if (client.state === 'initiate-sent') {
      const done = client.handleFirstServerMessage(packet)
      if (!done) return void this.close(new ProtocolError('ERR_HANDSHAKE', `${this.socket.remote} did not complete the handshake`))
      this.session = done.session
      this.open()
      if (done.message.length) this.deliverData(done.message)
      return
    }
    void this.close(new ProtocolError('ERR_HANDSHAKE', `unexpected packet in client state ${client.state}`))
  }

  private serverStep(packet: Buffer): void {
    const server = this.server as ServerHandshake
    const kind = packetKind(packet)
    if (kind === 'hello' && !this.helloAnswered) {
      const cookie = server.handleHello(packet)
      if (!cookie) return void this.close(new ProtocolError('ERR_HANDSHAKE', `refused a Hello from ${this.socket.remote}`))
      this.helloAnswered = true
      this.sendPacket(cookie)
      return
    }
    if (kind === 'initiate' && this.helloAnswered) {
      const accepted = server.handleInitiate(packet)
      if (!accepted || !accepted.clientSignId) return void this.close(new ProtocolError('ERR_HANDSHAKE', `refused an Initiate from ${this.socket.remote}`))
      // Authenticated: full-size packets from now on (before, at most the largest Initiate).
      this.socket.setMaxPacketBytes?.(TCP_MAX_PACKET_BYTES)
      this.session = accepted.session
      this.remoteSignId = accepted.clientSignId
      // The client may send past its Initiate once any Message of ours came. When the Initiate
      // carried bytes, what answers them (ACKs, replies) usually comes within a turn and is that
      // Message; the empty one then is never written (a system call here, a wake-up and a read
      // there, ahead of the delivery). Else it goes after the turn that follows (resume()).
      if (accepted.message.length) this.firstMessageOwed = true
      else this.sendPacket(this.session.seal(Buffer.alloc(0)))
      this.open()
      if (accepted.message.length) {
        this.stats.bytesIn += accepted.message.length
        this.deliverData(accepted.message)
        if (!this.held.holding) this.firstMessageSoon() // resumed before the handshake ended
      }
      return
    }
    void this.close(new ProtocolError('ERR_HANDSHAKE', `unexpected ${kind ?? 'unknown'} packet from ${this.socket.remote} during the handshake`))
  }

  /**
   * Starts `data` events. A server channel that owes its first Message writes an empty one after
   * the turn that follows, unless something was sent by then: queued here, after the delivery of
   * the Initiate's bytes, it runs after what their handlers queued (the seen-id record's batch,
   * whose ACKs and replies then make it needless).
   */
  override resume(): void {
    super.resume()
    this.firstMessageSoon()
  }

  private firstMessageSoon(): void {
    if (!this.firstMessageOwed) return
    setImmediate(() => {
      if (!this.firstMessageOwed || this.phase !== 'open' || !this.session) return
      this.sendSealed(this.session.seal(Buffer.alloc(0), this.headroom))
    })
  }

  private open(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.phase = 'open'
    this.emit('secure', this.remoteSignId)
    const rest = this.takePending(Infinity)
    if (rest.length) this.write(rest)
  }

  private takePending(max: number): Buffer {
    if (this.pendingBytes === 0 || max <= 0) return Buffer.alloc(0)
    const all = Buffer.concat(this.pending)
    const take = all.subarray(0, Math.min(max, all.length))
    const rest = all.subarray(take.length)
    this.pending = rest.length ? [rest] : []
    this.pendingBytes = rest.length
    if (this.pendingBytes < PRE_HANDSHAKE_BUFFER_BYTES && take.length) queueMicrotask(() => this.emit('drain'))
    return take
  }

  /** close(): closes the socket (gracefully, after what is queued) and the session. */
  protected shutdown(err?: Error): void {
    this.socket.close(err)
    this.finish(err)
  }

  /** The channel is done (closed by us, or its socket went away). */
  private finish(err?: Error): void {
    if (this.phase === 'closed') return
    this.phase = 'closed'
    if (this.timer) clearTimeout(this.timer)
    this.client?.fail()
    this.session?.close()
    this.pending = []
    this.pendingBytes = 0
    this.emitClose(err)
  }
}
