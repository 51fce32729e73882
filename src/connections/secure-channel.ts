/**
 * A secure channel: one CurveCP session over one PacketSocket, seen as an encrypted,
 * authenticated byte stream. The client's first bytes ride in the Initiate (no extra round trip);
 * the server answers the Initiate at once with a Message so that the client may send.
 *
 * On a stream transport every packet is expected: one that does not open (tampered, replayed,
 * out of place) means the stream is under attack or broken, so the channel closes with a
 * ProtocolError and the connection layer dials again. The node carries on.
 *
 * Events: `secure` (remote signId), `data` (Buffer; only after resume()), `drain`, `close` (error or undefined).
 */
import { EventEmitter } from 'node:events'
import { ProtocolError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import { ClientHandshake, type ServerHandshake } from '../curvecp/handshake.js'
import { packetKind, type PacketLimits } from '../curvecp/packets.js'
import type { Session } from '../curvecp/session.js'
import type { PacketSocket } from '../transports/packet-socket.js'
import { HeldData } from './held-data.js'

export const HANDSHAKE_TIMEOUT_MS = 10_000
/** Bytes a channel buffers before its handshake completes; above this write() says false. */
export const PRE_HANDSHAKE_BUFFER_BYTES = 1024 * 1024

export type ChannelState = 'handshaking' | 'open' | 'closed'

export interface ClientChannelOptions {
  identity: IdentityLike
  /** The signId we mean to reach; its boxId is the server key S we require. */
  remoteSignId: string
  remoteBoxId: string
  limits: PacketLimits
  handshakeTimeoutMs?: number
}

export interface ServerChannelOptions {
  handshake: ServerHandshake
  handshakeTimeoutMs?: number
}

export class SecureChannel extends EventEmitter {
  readonly initiator: boolean
  readonly socket: PacketSocket
  state: ChannelState = 'handshaking'
  remoteSignId: string | undefined
  /** Counts for tests and stats. */
  readonly stats = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 }
  private session: Session | undefined
  private client: ClientHandshake | undefined
  private server: ServerHandshake | undefined
  private pending: Buffer[] = []
  private pendingBytes = 0
  private timer: NodeJS.Timeout | undefined
  private closeError: Error | undefined
  /** Data that arrived before the owner called resume() (the Initiate's 0-RTT bytes, say). */
  private readonly held = new HeldData(PRE_HANDSHAKE_BUFFER_BYTES)
  /** writev's packet being gathered. */
  private parts: Buffer[] = []
  private partsBytes = 0

  private constructor(socket: PacketSocket, initiator: boolean, handshakeTimeoutMs: number) {
    super()
    this.socket = socket
    this.initiator = initiator
    socket.onPacket((packet) => this.onPacket(packet))
    socket.onDrain(() => this.emit('drain'))
    socket.onClose((err) => this.finish(err))
    this.timer = setTimeout(() => this.close(new ProtocolError('ERR_HANDSHAKE', `handshake with ${socket.remote} timed out after ${handshakeTimeoutMs} ms`)), handshakeTimeoutMs)
    this.timer.unref()
  }

  /** Dials: sends Hello at once. */
  static client(socket: PacketSocket, options: ClientChannelOptions): SecureChannel {
    const channel = new SecureChannel(socket, true, options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS)
    channel.remoteSignId = options.remoteSignId
    channel.client = new ClientHandshake({
      identity: options.identity,
      serverLongTermKey: Buffer.from(options.remoteBoxId, 'base64'),
      limits: options.limits,
      auth: 'signid'
    })
    channel.sendPacket(channel.client.hello())
    return channel
  }

  /** Answers: waits for a Hello. */
  static server(socket: PacketSocket, options: ServerChannelOptions): SecureChannel {
    const channel = new SecureChannel(socket, false, options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS)
    channel.server = options.handshake
    return channel
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
    if (this.state === 'closed') return false
    if (!this.session) {
      const copy = Buffer.from(data)
      this.pending.push(copy)
      this.pendingBytes += copy.length
      return this.pendingBytes < PRE_HANDSHAKE_BUFFER_BYTES
    }
    const max = this.session.maxMessage
    let ok = true
    for (let at = 0; at < data.length; at += max) {
      ok = this.sendPacket(this.session.seal(data.subarray(at, Math.min(at + max, data.length))))
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
    if (this.state === 'closed') return false
    const session = this.session
    if (!session) {
      let ok = true
      for (const b of buffers) ok = this.write(b)
      return ok
    }
    const max = session.maxMessage
    let ok = true
    this.socket.cork?.()
    for (const buffer of buffers) {
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
    this.socket.uncork?.()
    return ok
  }

  /** Seals the pieces gathered by writev into one packet and sends it. */
  private sealParts(session: Session): boolean {
    const parts = this.parts
    const message = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, this.partsBytes)
    this.stats.bytesOut += this.partsBytes
    this.parts = []
    this.partsBytes = 0
    return this.sendPacket(session.seal(message))
  }

  private sendPacket(packet: Buffer): boolean {
    this.stats.packetsOut++
    return this.socket.send(packet)
  }

  private onPacket(packet: Buffer): void {
    if (this.state === 'closed') return
    this.stats.packetsIn++
    if (this.session && this.state === 'open') {
      const data = this.session.open(packet)
      if (!data) return this.close(new ProtocolError('ERR_PROTOCOL', `dropped a packet from ${this.socket.remote} that does not open (tampered, replayed or foreign); closing the channel`))
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
      if (!initiate) return this.close(new ProtocolError('ERR_HANDSHAKE', `${this.socket.remote} answered with something other than a Cookie from the expected server key`))
      this.stats.bytesOut += first.length
      this.sendPacket(initiate)
      return
    }
    if (client.state === 'initiate-sent') {
      const done = client.handleFirstServerMessage(packet)
      if (!done) return this.close(new ProtocolError('ERR_HANDSHAKE', `${this.socket.remote} did not complete the handshake`))
      this.session = done.session
      this.open()
      if (done.message.length) this.deliverData(done.message)
      return
    }
    this.close(new ProtocolError('ERR_HANDSHAKE', `unexpected packet in client state ${client.state}`))
  }

  private serverStep(packet: Buffer): void {
    const server = this.server as ServerHandshake
    const kind = packetKind(packet)
    if (kind === 'hello' && !this.helloAnswered) {
      const cookie = server.handleHello(packet)
      if (!cookie) return this.close(new ProtocolError('ERR_HANDSHAKE', `refused a Hello from ${this.socket.remote}`))
      this.helloAnswered = true
      this.sendPacket(cookie)
      return
    }
    if (kind === 'initiate' && this.helloAnswered) {
      const accepted = server.handleInitiate(packet)
      if (!accepted || !accepted.clientSignId) return this.close(new ProtocolError('ERR_HANDSHAKE', `refused an Initiate from ${this.socket.remote}`))
      this.session = accepted.session
      this.remoteSignId = accepted.clientSignId
      this.sendPacket(this.session.seal(Buffer.alloc(0)))
      this.open()
      if (accepted.message.length) {
        this.stats.bytesIn += accepted.message.length
        this.deliverData(accepted.message)
      }
      return
    }
    this.close(new ProtocolError('ERR_HANDSHAKE', `unexpected ${kind ?? 'unknown'} packet from ${this.socket.remote} during the handshake`))
  }

  private helloAnswered = false

  private deliverData(data: Buffer): void {
    if (!this.held.holding) {
      this.emit('data', data)
      return
    }
    if (!this.held.hold(data)) this.close(new ProtocolError('ERR_PROTOCOL', `${this.socket.remote} sent more than ${PRE_HANDSHAKE_BUFFER_BYTES} bytes before the session was taken up`))
  }

  /**
   * Starts `data` events, first with what arrived before (a channel starts paused, so that
   * nothing is lost between the handshake and its owner attaching listeners).
   */
  resume(): void {
    this.held.release(
      (data) => this.emit('data', data),
      () => this.state !== 'closed'
    )
  }

  private open(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.state = 'open'
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

  /** Closes the channel (and its socket); `err` says why. Idempotent. */
  close(err?: Error): void {
    if (this.state === 'closed') return
    this.closeError ??= err
    this.socket.close(err)
    this.finish(err)
  }

  private finish(err?: Error): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    if (this.timer) clearTimeout(this.timer)
    this.client?.fail()
    this.session?.close()
    this.pending = []
    this.pendingBytes = 0
    this.emit('close', this.closeError ?? err)
  }
}
