/**
 * UDP transport: CurveCP packets, one datagram each (curvecp.org/packets.html), on one socket per
 * node that both answers and dials.
 *
 * - Server side, stateless until proven: a Hello is answered by {@link ServerHandshake} with a
 *   Cookie (200 bytes, never more than the 224-byte Hello: no amplification) and nothing is
 *   kept; an Initiate creates a session only once its cookie, box and vouch check out. After
 *   that, Initiates and Client Messages are routed by the client's short-term key C' (bytes
 *   40..72) to that session, which opens them itself (a repeated Initiate included).
 * - Client side: each dial picks a random client extension (curvecp.org/addressing.html: the
 *   client's routing field) so Cookies and Server Messages find their dial without a lookup by
 *   address; the packets themselves are authenticated by the session above.
 * - Hostile input is dropped and counted by reason ({@link UdpEndpoint.drops}): wrong size, no
 *   magic, unknown client, failed handshake. Nothing is allocated per sender for such packets.
 *
 * `connectionInfo` entry: `{transportType: 'udp', transportInfo: {address, port}}`.
 */
import net from 'node:net'
import os from 'node:os'
import { randomBytes } from '../crypto/sodium.js'
import { InvalidArgumentError, StateError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import { EXTENSION_BYTES, HELLO_BYTES, INITIATE_BASE_BYTES, UDP_MAX_INITIATE_MESSAGE_BYTES, UDP_MAX_MESSAGE_BYTES, SERVER_MESSAGE_BASE_BYTES } from '../curvecp/constants.js'
import { ServerHandshake, encodeDomainName, type AcceptedInitiate, type AuthMode } from '../curvecp/handshake.js'
import { UDP_LIMITS, packetKind } from '../curvecp/packets.js'
import type { ConnectionInfoEntry } from './connection-info.js'
import { UdpLinkImpl, type LinkOwner, type UdpLink } from './udp-link.js'
import { bindUdpSocket, type DatagramSocket } from './udp-socket.js'

export type { UdpLink } from './udp-link.js'
export { bindUdpSocket, UDP_SOCKET_BUFFER_BYTES, type DatagramSocket } from './udp-socket.js'

/** Largest datagram we accept: an Initiate with a 640-byte message (1184). */
export const UDP_MAX_DATAGRAM_BYTES = INITIATE_BASE_BYTES + UDP_MAX_INITIATE_MESSAGE_BYTES
/** Smallest datagram that can be a CurveCP packet: a Server Message with 16 bytes (80). */
export const UDP_MIN_DATAGRAM_BYTES = SERVER_MESSAGE_BASE_BYTES + 16
/** Largest Client Message (96 + 1088). */
const MAX_CLIENT_MESSAGE_BYTES = 96 + UDP_MAX_MESSAGE_BYTES
/** Accepted sessions at most; further Initiates are dropped before any crypto. */
export const MAX_UDP_SESSIONS = 4096
/** Dials at once at most. */
export const MAX_UDP_DIALS = 4096
/** Datagrams a dial may queue before the socket is bound. */
const MAX_SENDS_BEFORE_BIND = 64

/** Why the endpoint dropped a datagram. */
export type UdpDropReason =
  | 'truncated'
  | 'oversized'
  | 'wrong-size'
  | 'garbage'
  | 'not-listening'
  | 'bad-hello'
  | 'bad-initiate'
  | 'wrong-name'
  | 'too-many-sessions'
  | 'unknown-client'
  | 'unknown-dial'
  | 'not-admitted'

export interface UdpEndpointOptions {
  identity: IdentityLike
  /** Handshake extension: 'signid' (ours, default) or 'none' (plain CurveCP, DJB's tools). */
  auth?: AuthMode
  /** Our server extension (16 bytes, default zero): Hellos and Initiates must name it. */
  serverExtension?: Buffer
  /** When set, accepted Initiates must carry this server name (curvecp.org/addressing.html). */
  domainName?: string
  maxSessions?: number
  /** Wraps the bound socket (tests: loss). */
  wrapSocket?: (socket: DatagramSocket) => DatagramSocket
  socketBufferBytes?: number
  /** Clock for the cookie-key rotation. */
  now?: () => number
  /**
   * Admission of a Hello or an Initiate that would make a new session, from `address` (the
   * connection layer's per-address and global rates). False: dropped before any crypto.
   */
  admit?: (address: string) => boolean
  /**
   * Called when the session table is full and an Initiate would make a new session: the owner may
   * release a session it values least (a stranger's) and say true. False: the Initiate is dropped.
   */
  makeRoom?: () => boolean
}

export interface UdpListenOptions {
  /** Address to bind; default 0.0.0.0. */
  host?: string
  /** Port; default 0 (a free port). */
  port?: number
}

export class UdpEndpoint implements LinkOwner {
  /** Dropped datagrams by reason. */
  readonly drops: Record<UdpDropReason, number> = {
    truncated: 0,
    oversized: 0,
    'wrong-size': 0,
    garbage: 0,
    'not-listening': 0,
    'bad-hello': 0,
    'bad-initiate': 0,
    'wrong-name': 0,
    'too-many-sessions': 0,
    'unknown-client': 0,
    'unknown-dial': 0,
    'not-admitted': 0
  }
  readonly stats = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, cookiesSent: 0, accepted: 0 }
  /** The stateless responder; its own drop counters say why a Hello or Initiate failed. */
  readonly handshake: ServerHandshake
  private readonly options: UdpEndpointOptions
  private readonly domainName: Buffer | undefined
  private readonly maxSessions: number
  private socket: DatagramSocket | undefined
  private binding: Promise<void> | undefined
  private host = '0.0.0.0'
  private listening = false
  private closed = false
  private closing: Promise<void> | undefined
  private pendingSends: Array<[Buffer, number, string]> = []
  /** Accepted clients by C' (latin1 of 32 bytes). */
  private readonly sessions = new Map<string, UdpLinkImpl>()
  /** Our dials by client extension (latin1 of 16 bytes). */
  private readonly dials = new Map<string, UdpLinkImpl>()
  private acceptListener: ((link: UdpLink, accepted: AcceptedInitiate) => void) | undefined
  /** The link the last Message or Cookie went to (see route()). */
  private lastRouted: UdpLinkImpl | undefined

  constructor(options: UdpEndpointOptions) {
    this.options = options
    this.maxSessions = options.maxSessions ?? MAX_UDP_SESSIONS
    this.domainName = options.domainName === undefined ? undefined : encodeDomainName(options.domainName)
    this.handshake = new ServerHandshake({
      identity: options.identity,
      limits: UDP_LIMITS,
      auth: options.auth ?? 'signid',
      ...(options.serverExtension ? { serverExtension: options.serverExtension } : {}),
      ...(options.now ? { now: options.now } : {})
    })
  }

  /** Binds the socket and answers Hellos and Initiates from now on. */
  async listen(options: UdpListenOptions = {}): Promise<void> {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the udp endpoint is closed')
    if (this.socket || this.binding) throw new StateError('ERR_INVALID_ARGUMENT', 'the udp endpoint is already bound')
    this.listening = true
    await this.bind(options.host ?? '0.0.0.0', options.port ?? 0)
  }

  /** Binds for dialling only (a free port on all interfaces), unless bound already. */
  ensureBound(): Promise<void> {
    if (this.socket) return Promise.resolve()
    return this.binding ?? this.bind('0.0.0.0', 0)
  }

  private bind(host: string, port: number): Promise<void> {
    this.host = host
    this.binding = bindUdpSocket(host, port, this.options.socketBufferBytes).then((raw) => {
      const socket = this.options.wrapSocket ? this.options.wrapSocket(raw) : raw
      if (this.closed) {
        void socket.close()
        return
      }
      this.socket = socket
      socket.onMessage((packet, p, address) => this.onDatagram(packet, address, p))
      for (const [packet, p, address] of this.pendingSends.splice(0)) this.sendTo(packet, p, address)
    })
    return this.binding
  }

  /** The bound port (0 before binding). */
  get port(): number {
    return this.socket ? this.socket.address().port : 0
  }

  /** Accepted sessions held now (per-client state). */
  get sessionCount(): number {
    return this.sessions.size
  }

  /** Dials held now. */
  get dialCount(): number {
    return this.dials.size
  }

  /** Total dropped datagrams (ours and the handshake's). */
  get dropped(): number {
    let n = 0
    for (const v of Object.values(this.drops)) n += v
    return n
  }

  /** Called for each client whose Initiate proved itself; without a listener it is dropped. */
  onAccept(listener: (link: UdpLink, accepted: AcceptedInitiate) => void): void {
    this.acceptListener = listener
  }

  /** connectionInfo entries for where we listen (every IPv4 interface address when bound to all). */
  connectionInfo(): ConnectionInfoEntry[] {
    const port = this.port
    if (!this.listening || !port) return []
    if (this.host !== '0.0.0.0') return [{ transportType: 'udp', transportInfo: { address: this.host, port } }]
    const addresses: string[] = []
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) addresses.push(a.address)
    }
    addresses.push('127.0.0.1')
    return addresses.slice(0, 8).map((address) => ({ transportType: 'udp', transportInfo: { address, port } }))
  }

  /**
   * A link for dialling `address:port`: Cookies and Server Messages carrying its client extension
   * come to it. Binds a free port first if needed (datagrams wait until then).
   * @throws InvalidArgumentError for a bad address or port or a client extension in use.
   */
  connect(address: string, port: number, clientExtension?: Buffer): UdpLink {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the udp endpoint is closed')
    if (net.isIPv4(address) === false) throw new InvalidArgumentError(`not an IPv4 address: ${address}`)
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`not a port: ${port}`)
    if (clientExtension && clientExtension.length !== EXTENSION_BYTES) throw new InvalidArgumentError('a client extension is 16 bytes')
    if (this.dials.size >= MAX_UDP_DIALS) throw new StateError('ERR_LIMIT_REACHED', `at most ${MAX_UDP_DIALS} udp dials at once`)
    let ext = clientExtension ? Buffer.from(clientExtension) : randomBytes(EXTENSION_BYTES)
    let key = ext.toString('latin1')
    if (this.dials.has(key)) {
      if (clientExtension) throw new InvalidArgumentError('that client extension is in use by another dial')
      ext = randomBytes(EXTENSION_BYTES)
      key = ext.toString('latin1')
    }
    const link = new UdpLinkImpl(this, 'client', key, address, port, ext, ext)
    this.dials.set(key, link)
    void this.ensureBound().catch((err: Error) => link.onClose(err))
    return link
  }

  /** @internal Sends one datagram (queued briefly while binding). */
  sendTo(packet: Buffer, port: number, address: string): void {
    if (this.closed) return
    if (!this.socket) {
      if (this.pendingSends.length < MAX_SENDS_BEFORE_BIND) this.pendingSends.push([packet, port, address])
      return
    }
    this.stats.packetsOut++
    this.stats.bytesOut += packet.length
    this.socket.send(packet, port, address)
  }

  /** @internal */
  forget(link: UdpLinkImpl): void {
    const map = link.role === 'client' ? this.dials : this.sessions
    if (map.get(link.key) === link) map.delete(link.key)
    if (this.lastRouted === link) this.lastRouted = undefined
  }

  private onDatagram(packet: Buffer, address: string, port: number): void {
    if (this.closed) return
    this.stats.packetsIn++
    this.stats.bytesIn += packet.length
    const len = packet.length
    if (len < UDP_MIN_DATAGRAM_BYTES) return void this.drops.truncated++
    if (len > UDP_MAX_DATAGRAM_BYTES) return void this.drops.oversized++
    const kind = packetKind(packet)
    switch (kind) {
      case 'hello':
        return this.onHello(packet, address, port)
      case 'initiate':
        return this.onInitiate(packet, address, port)
      case 'client-message': {
        if (len > MAX_CLIENT_MESSAGE_BYTES || len < 96 + 16 || len % 16 !== 0) return void this.drops['wrong-size']++
        const link = this.route(this.sessions, packet, 40)
        if (!link) return void this.drops['unknown-client']++
        return link.onPacket(packet, address, port, 'client-message')
      }
      case 'cookie':
      case 'server-message': {
        const link = this.route(this.dials, packet, 8)
        if (!link) return void this.drops['unknown-dial']++
        return link.onPacket(packet, address, port, kind)
      }
      default:
        this.drops.garbage++
    }
  }

  /**
   * The link whose key is at `at` in the packet. The link of the previous datagram is tried first
   * by its bytes: a run of datagrams mostly belongs to one session, and the lookup by string
   * costs a string per datagram.
   */
  private route(map: Map<string, UdpLinkImpl>, packet: Buffer, at: number): UdpLinkImpl | undefined {
    const last = this.lastRouted
    if (last && !last.released && map === (last.role === 'client' ? this.dials : this.sessions) && bytesAt(packet, at, last.keyBytes)) return last
    const link = map.get(packet.toString('latin1', at, at + (map === this.dials ? EXTENSION_BYTES : 32)))
    if (link) this.lastRouted = link
    return link
  }

  private onHello(packet: Buffer, address: string, port: number): void {
    if (!this.listening) return void this.drops['not-listening']++
    if (packet.length !== HELLO_BYTES) return void this.drops['wrong-size']++
    if (this.options.admit && !this.options.admit(address)) return void this.drops['not-admitted']++
    const cookie = this.handshake.handleHello(packet)
    if (!cookie) return void this.drops['bad-hello']++
    this.stats.cookiesSent++
    this.sendTo(cookie, port, address)
  }

  private onInitiate(packet: Buffer, address: string, port: number): void {
    if (!this.listening) return void this.drops['not-listening']++
    if (packet.length < INITIATE_BASE_BYTES + 16 || packet.length % 16 !== 0) return void this.drops['wrong-size']++
    const key = packet.toString('latin1', 40, 72)
    const existing = this.sessions.get(key)
    // A repeated Initiate belongs to its session, which opens it with the session key.
    if (existing) return existing.onPacket(packet, address, port, 'initiate')
    if (this.options.admit && !this.options.admit(address)) return void this.drops['not-admitted']++
    if (this.sessions.size >= this.maxSessions && !(this.options.makeRoom?.() && this.sessions.size < this.maxSessions)) return void this.drops['too-many-sessions']++
    const accepted = this.handshake.handleInitiate(packet)
    if (!accepted) return void this.drops['bad-initiate']++
    if (this.domainName && !accepted.domainName.equals(this.domainName)) {
      accepted.session.close()
      return void this.drops['wrong-name']++
    }
    const listener = this.acceptListener
    if (!listener) {
      accepted.session.close()
      return void this.drops['not-listening']++
    }
    const link = new UdpLinkImpl(this, 'server', key, address, port, Buffer.from(packet.subarray(24, 40)), Buffer.from(packet.subarray(40, 72)))
    this.sessions.set(key, link)
    this.stats.accepted++
    listener(link, accepted)
  }

  /** Closes the socket; every link hears `onClose`. Idempotent: repeat callers get the same promise. */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    this.closed = true
    const err = new StateError('ERR_CLOSED', 'the udp endpoint closed')
    for (const link of [...this.sessions.values(), ...this.dials.values()]) {
      link.released = true
      link.onClose(err)
    }
    this.sessions.clear()
    this.dials.clear()
    this.pendingSends = []
    await this.binding?.catch(() => undefined)
    await this.socket?.close()
    this.handshake.close()
  }
}

/** Whether `packet` holds `key` at `at`. */
function bytesAt(packet: Buffer, at: number, key: Buffer): boolean {
  for (let i = 0; i < key.length; i++) if (packet[at + i] !== key[i]) return false
  return true
}

/** The address and port of a udp connectionInfo entry, or null if it is not one we can dial. */
export function udpTarget(entry: ConnectionInfoEntry): { address: string; port: number } | null {
  if (entry.transportType !== 'udp') return null
  const { address, port } = entry.transportInfo as { address?: unknown; port?: unknown }
  if (typeof address !== 'string' || !net.isIPv4(address)) return null
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null
  return { address, port }
}
