/**
 * TCP transport: CurveCP packets on a TCP connection, each prefixed by its u32 length.
 * `connectionInfo` entry: `{transportType: 'tcp', transportInfo: {address, port}}`.
 */
import net from 'node:net'
import os from 'node:os'
import { TransportError } from '../errors.js'
import { INITIATE_BASE_BYTES, STREAM_MAX_INITIATE_MESSAGE_BYTES } from '../curvecp/constants.js'
import { LENGTH_PREFIX_BYTES, LengthPrefixDecoder, encodeLengthPrefix } from './length-prefix.js'
import type { PacketSocket } from './packet-socket.js'
import type { ConnectionInfoEntry } from './connection-info.js'

/** Largest packet accepted on TCP: a Client Message with the largest stream message (96 + 128 KiB), rounded up. */
export const TCP_MAX_PACKET_BYTES = 131_072 + 1024
/**
 * Largest packet an accepted connection may send before it is authenticated: the largest valid
 * Initiate (544 + 4096). A silent or slow pre-auth connection holds at most this much.
 */
export const TCP_PRE_AUTH_MAX_PACKET_BYTES = INITIATE_BASE_BYTES + STREAM_MAX_INITIATE_MESSAGE_BYTES
/** Above this many bytes waiting in the socket, send() says false (back-pressure). */
export const TCP_HIGH_WATER_BYTES = 1024 * 1024
export const TCP_CONNECT_TIMEOUT_MS = 10_000

class TcpPacketSocket implements PacketSocket {
  readonly remote: string
  private readonly socket: net.Socket
  private readonly decoder: LengthPrefixDecoder
  private readonly closeListeners: Array<(err?: Error) => void> = []
  private closed = false
  private closing: Promise<void> | undefined
  private failure: Error | undefined

  /** `remote`: where a socket still connecting goes (it knows no remote address yet). */
  constructor(socket: net.Socket, maxPacketBytes = TCP_MAX_PACKET_BYTES, remote?: string) {
    this.socket = socket
    this.decoder = new LengthPrefixDecoder(maxPacketBytes)
    this.remote = remote ?? `tcp:${socket.remoteAddress}:${socket.remotePort}`
    socket.setNoDelay(true)
    let connected = !socket.connecting
    if (!connected) socket.once('connect', () => void (connected = true))
    socket.on('error', (err) => {
      this.failure ??= !connected
        ? new TransportError('ERR_UNREACHABLE', `tcp connect to ${this.remote.slice(4)} failed: ${err.message}`, { cause: err })
        : new TransportError('ERR_TRANSPORT', `tcp ${this.remote}: ${err.message}`, { cause: err })
    })
    socket.on('close', () => {
      if (this.closed && this.closeListeners.length === 0) return
      this.closed = true
      const listeners = this.closeListeners.splice(0)
      for (const l of listeners) l(this.failure)
    })
  }

  get bufferedBytes(): number {
    return this.socket.writableLength
  }

  send(packet: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false
    this.socket.cork()
    this.socket.write(encodeLengthPrefix(packet.length))
    this.socket.write(packet)
    this.socket.uncork()
    return this.socket.writableLength < TCP_HIGH_WATER_BYTES
  }

  readonly headroom = LENGTH_PREFIX_BYTES

  sendFramed(buffer: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false
    buffer.writeUInt32BE(buffer.length - LENGTH_PREFIX_BYTES, 0)
    this.socket.write(buffer)
    return this.socket.writableLength < TCP_HIGH_WATER_BYTES
  }

  cork(): void {
    this.socket.cork()
  }

  setMaxPacketBytes(bytes: number): void {
    this.decoder.maxLength = bytes
  }

  uncork(): void {
    this.socket.uncork()
  }

  onPacket(listener: (packet: Buffer) => void): void {
    this.socket.on('data', (chunk: Buffer) => {
      if (this.closed) return
      try {
        this.decoder.push(chunk, listener)
      } catch (err) {
        this.close(err as Error)
      }
    })
  }

  onDrain(listener: () => void): void {
    this.socket.on('drain', listener)
  }

  onClose(listener: (err?: Error) => void): void {
    if (this.closed && this.socket.destroyed) queueMicrotask(() => listener(this.failure))
    else this.closeListeners.push(listener)
  }

  close(err?: Error): Promise<void> {
    if (err) this.failure ??= err
    if (this.closing) return this.closing
    this.closing = new Promise((resolve) => {
      if (this.socket.destroyed) resolve()
      else this.socket.once('close', () => resolve())
    })
    if (this.closed) return this.closing
    this.closed = true
    if (this.socket.connecting) {
      // Not connected yet (connectTcp): nothing of ours has left, and nothing is owed.
      this.socket.destroy()
      return this.closing
    }
    // Flush what is queued, then FIN; destroy if the peer does not finish in time. Nothing read
    // from now on is used: reads stop until our bytes are flushed (then only the peer's FIN is
    // awaited), so a peer that floods and does not read cannot keep us reading (and allocating
    // a buffer per read) at its rate until the timer below.
    this.socket.pause()
    this.socket.once('finish', () => this.socket.resume())
    this.socket.end()
    const timer = setTimeout(() => this.socket.destroy(), 2_000)
    timer.unref()
    this.socket.once('close', () => clearTimeout(timer))
    if (this.socket.destroyed) {
      const listeners = this.closeListeners.splice(0)
      for (const l of listeners) l(this.failure)
    }
    return this.closing
  }
}

export interface TcpListenOptions {
  /** Address to bind; default all interfaces (`::` falls back to `0.0.0.0`). */
  host?: string
  /** Port; default 0 (a free port). */
  port?: number
}

/** A listening TCP endpoint that hands each accepted connection over as a PacketSocket. */
export class TcpListener {
  private readonly server: net.Server
  private readonly sockets = new Set<net.Socket>()
  private host = ''
  private closing: Promise<void> | undefined

  constructor(onSocket: (socket: PacketSocket) => void) {
    this.server = net.createServer((socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
      onSocket(new TcpPacketSocket(socket, TCP_PRE_AUTH_MAX_PACKET_BYTES))
    })
  }

  listen(options: TcpListenOptions = {}): Promise<void> {
    this.host = options.host ?? '0.0.0.0'
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new TransportError('ERR_TRANSPORT', `cannot listen on tcp ${this.host}:${options.port ?? 0}: ${err.message}`, { cause: err }))
      this.server.once('error', onError)
      this.server.listen({ host: this.host, port: options.port ?? 0 }, () => {
        this.server.off('error', onError)
        resolve()
      })
    })
  }

  get port(): number {
    const a = this.server.address()
    return a && typeof a === 'object' ? a.port : 0
  }

  /** connectionInfo entries for where we listen (every interface address when bound to all). */
  connectionInfo(): ConnectionInfoEntry[] {
    const port = this.port
    if (this.host !== '0.0.0.0' && this.host !== '::') return [{ transportType: 'tcp', transportInfo: { address: this.host, port } }]
    const addresses: string[] = []
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) addresses.push(a.address)
    }
    addresses.push('127.0.0.1')
    return addresses.slice(0, 8).map((address) => ({ transportType: 'tcp', transportInfo: { address, port } }))
  }

  /** Stops listening and destroys accepted sockets still open. Idempotent: one shared promise. */
  close(): Promise<void> {
    if (this.closing) return this.closing
    for (const s of this.sockets) s.destroy()
    this.closing = new Promise((resolve) => {
      if (!this.server.listening) return resolve()
      this.server.close(() => resolve())
    })
    return this.closing
  }
}

/**
 * Starts connecting to a TCP endpoint and returns its PacketSocket at once. Packets sent before
 * the connection is up wait in the socket and leave from within its connect event (a client's
 * Hello then goes as soon as it can, not after a turn and the channel's set-up). The connect
 * syscall itself runs on the next tick (node:net), so work done right after this call is not
 * ahead of it on the wire. A failed connect closes the socket with ERR_UNREACHABLE; the wait is
 * bounded by the caller (the channel's handshake timer).
 */
export function connectTcp(address: string, port: number): PacketSocket {
  return new TcpPacketSocket(net.connect({ host: address, port }), TCP_MAX_PACKET_BYTES, `tcp:${address}:${port}`)
}

/** Connects to a TCP endpoint; resolves with a PacketSocket once connected. */
export function dialTcp(address: string, port: number, timeoutMs = TCP_CONNECT_TIMEOUT_MS): Promise<PacketSocket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new TransportError('ERR_TIMEOUT', `tcp connect to ${address}:${port} timed out after ${timeoutMs} ms`))
    }, timeoutMs)
    timer.unref()
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      resolve(new TcpPacketSocket(socket))
    })
    socket.once('error', (err) => {
      clearTimeout(timer)
      socket.destroy()
      reject(new TransportError('ERR_UNREACHABLE', `tcp connect to ${address}:${port} failed: ${err.message}`, { cause: err }))
    })
  })
}

/** The address and port of a tcp connectionInfo entry, or null if it is not one we can dial. */
export function tcpTarget(entry: ConnectionInfoEntry): { address: string; port: number } | null {
  if (entry.transportType !== 'tcp') return null
  const { address, port } = entry.transportInfo as { address?: unknown; port?: unknown }
  if (typeof address !== 'string' || net.isIP(address) === 0) return null
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null
  return { address, port }
}
