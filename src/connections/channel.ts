/**
 * The one channel interface of the connection layer, and the core both channels share.
 *
 * A channel is one authenticated CurveCP session seen as an encrypted byte stream, on TCP
 * ({@link TcpChannel}, tcp-channel.ts) or UDP ({@link UdpChannel}, udp-channel.ts). The connection
 * manager takes either through {@link Channel}.
 *
 * Events: `secure` (remote signId), `data` (Buffer; only after resume()), `drain`,
 * `close` (the error that closed it, or undefined).
 *
 * State (both transports):
 *
 *   handshaking ──handshake done──▶ open ──close() / remote end / failure──▶ closed
 *        └──────────────timeout / failure / close()──────────────────────────▲
 *
 * What both do is here: the state, the bounded buffer of what arrives before resume()
 * (held, or the channel closes: the peer sent too much too early), resume(), the one
 * idempotent close() that returns the same promise to every caller, and the client handshake
 * set-up. What differs (packets on a stream socket vs. the UDP message layer) is in each file.
 */
import { EventEmitter } from 'node:events'
import { ProtocolError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import { ClientHandshake, type AuthMode } from '../curvecp/handshake.js'
import type { PacketLimits } from '../curvecp/packets.js'
import { HeldData } from './held-data.js'

export type ChannelState = 'handshaking' | 'open' | 'closed'

/** Bytes a channel holds before `resume()`; more closes it (the peer sent too much too early). */
export const PAUSED_BUFFER_BYTES = 1024 * 1024

/** A secure channel on any transport: what the connection layer uses. */
export interface Channel extends EventEmitter {
  /** True when we dialled. */
  readonly initiator: boolean
  readonly state: ChannelState
  /** The peer's signId: known at once when we dial, after the handshake when we answer. */
  readonly remoteSignId: string | undefined
  /** `tcp:address:port` or `udp:address:port` of the peer. */
  readonly remote: string
  /** Bytes written and not yet gone (back-pressure measure). */
  readonly bufferedBytes: number
  /** Room for application bytes that can ride in the Initiate now (0 when none). */
  readonly earlyRoom: number
  /** Sends bytes; false: wait for `drain`. */
  write(data: Uint8Array): boolean
  /** Several buffers as one stretch of the stream, in as few packets as fit. */
  writev(buffers: Buffer[]): boolean
  /** Starts `data` events (a channel starts paused, holding what arrives). */
  resume(): void
  /**
   * Closes the channel; `err` says why. Idempotent: every caller gets the same promise, which
   * resolves once the channel is closed (its `close` event fired). Never rejects.
   */
  close(err?: Error): Promise<void>
}

/** What both channels do the same way. */
export abstract class ChannelCore extends EventEmitter implements Channel {
  readonly initiator: boolean
  remoteSignId: string | undefined
  /** Why the channel closed (the first reason given wins). */
  protected closeError: Error | undefined
  /** Data that arrived before the owner called resume() (the Initiate's 0-RTT bytes, say). */
  protected readonly held = new HeldData(PAUSED_BUFFER_BYTES)
  private closing: Promise<void> | undefined

  protected constructor(initiator: boolean) {
    super()
    this.initiator = initiator
  }

  abstract get state(): ChannelState
  abstract get remote(): string
  abstract get bufferedBytes(): number
  abstract get earlyRoom(): number
  abstract write(data: Uint8Array): boolean
  abstract writev(buffers: Buffer[]): boolean

  /** Starts closing (the transport's own way); must end in finish(). Called once, while not closed. */
  protected abstract shutdown(err?: Error): void

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

  close(err?: Error): Promise<void> {
    if (this.closing) return this.closing
    if (this.state === 'closed') {
      this.closing = Promise.resolve()
      return this.closing
    }
    this.closing = new Promise((resolve) => this.once('close', () => resolve()))
    this.closeError ??= err
    this.shutdown(err)
    return this.closing
  }

  /** Data from the peer: emitted, or held until resume(); past the bound the channel closes. */
  protected deliverData(data: Buffer): void {
    if (!this.held.holding) {
      this.emit('data', data)
      return
    }
    if (!this.held.hold(data)) void this.close(new ProtocolError('ERR_PROTOCOL', `${this.remote} sent more than ${PAUSED_BUFFER_BYTES} bytes before the channel was resumed`))
  }

  /** Emits `close` once with the first reason given. Subclasses set their state first. */
  protected emitClose(err?: Error): void {
    this.closeError ??= err
    this.emit('close', this.closeError)
  }
}

export interface ClientHandshakeOptions {
  identity: IdentityLike
  /** The server's long-term key S: its boxId, base64. */
  remoteBoxId: string
  limits: PacketLimits
  auth: AuthMode
  clientExtension?: Buffer
  serverExtension?: Buffer
  domainName?: string
}

/** The client side of the handshake to the server whose boxId is `remoteBoxId`. */
export function clientHandshake(options: ClientHandshakeOptions): ClientHandshake {
  return new ClientHandshake({
    identity: options.identity,
    serverLongTermKey: Buffer.from(options.remoteBoxId, 'base64'),
    limits: options.limits,
    auth: options.auth,
    ...(options.clientExtension ? { clientExtension: options.clientExtension } : {}),
    ...(options.serverExtension ? { serverExtension: options.serverExtension } : {}),
    ...(options.domainName !== undefined ? { domainName: options.domainName } : {})
  })
}
