/**
 * Dialling and accepting: how channels come to be.
 *
 * - listen(): the TCP listener and the UDP endpoint, answering Hellos; each authenticated
 *   incoming channel joins its peer (sessions.ts).
 * - ensureChannel(): an idle peer with messages waiting is dialled. The directory gives its
 *   nodeInfo; every dialable address of every transport is tried at once and the first
 *   authenticated channel wins, the rest are closed (Happy Eyeballs, RFC 8305's idea: TCP first,
 *   UDP after a head start). The first frames ride in the TCP Initiate (0-RTT, send.ts).
 * - A failed dial fails the realtime messages and starts the reconnect backoff (timers.ts).
 * - Admission (admission.ts): incoming TCP connections and UDP Hellos/Initiates are bounded per
 *   source address and in all, in number under way and in rate, before any crypto; an accepted
 *   TCP connection reads at most the largest valid Initiate until it is authenticated.
 */
import { DeliveryError, ProtocolError, describe } from '../errors.js'
import { signPublicToBoxPublic } from '../crypto/sodium.js'
import { ServerHandshake } from '../curvecp/handshake.js'
import { STREAM_LIMITS } from '../curvecp/packets.js'
import { parseId } from '../identity/ids.js'
import type { ConnectionInfoEntry, NodeInfo } from '../transports/connection-info.js'
import type { PacketSocket } from '../transports/packet-socket.js'
import { TcpListener, connectTcp, tcpTarget, type TcpListenOptions } from '../transports/tcp.js'
import { udpTarget, type UdpListenOptions } from '../transports/udp.js'
import type { Channel } from './channel.js'
import { isStranger } from './limits.js'
import type { ConnectionContext, Dialling, Reconnecting } from './context.js'
import { HandshakeAdmission, addressOf, type AdmissionLimits } from './admission.js'
import type { Peer } from './peer.js'
import type { Sender } from './send.js'
import type { Sessions } from './sessions.js'
import { TcpChannel } from './tcp-channel.js'
import { udpChannelTimings } from './timings.js'
import type { UdpChannels } from './udp-channels.js'

export interface DialerOptions {
  getNodeInfo(signId: string): Promise<NodeInfo>
  /** Called when dialling from a nodeInfo failed: it may be out of date. */
  forgetNodeInfo?(signId: string): void
  /** TCP listen options; false: do not listen (dial only). */
  tcp?: TcpListenOptions | false
  /** UDP listen options; false: no UDP at all. Default: all interfaces, a free port. */
  udp?: UdpListenOptions | false
  admission?: Partial<AdmissionLimits>
  /** Accepted UDP sessions at most (default 4,096); past it a stranger's session makes room. */
  maxUdpSessions?: number
}

type Target = { address: string; port: number }

/** Resolves after the ticks queued so far have run (node:net's connect among them). */
const afterTick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve))

export class Dialer implements Dialling {
  private readonly ctx: ConnectionContext
  private readonly options: DialerOptions
  private readonly sender: Sender
  private readonly sessions: Sessions
  private readonly reconnecting: Reconnecting
  /** Channels still in their handshake (closed by close()). */
  private readonly handshaking = new Set<Channel>()
  private handshake: ServerHandshake | undefined
  private listener: TcpListener | undefined
  private udp: UdpChannels | undefined
  private closing: Promise<void> | undefined
  private readonly admission: HandshakeAdmission

  constructor(ctx: ConnectionContext, options: DialerOptions, parts: { sender: Sender; sessions: Sessions; reconnecting: Reconnecting }) {
    this.ctx = ctx
    this.admission = new HandshakeAdmission(options.admission, ctx.counts)
    this.options = options
    this.sender = parts.sender
    this.sessions = parts.sessions
    this.reconnecting = parts.reconnecting
  }

  /** Dropped-packet counters of the TCP handshake responder. */
  get handshakeDrops(): Readonly<Record<string, number>> {
    return this.handshake ? { ...this.handshake.drops } : {}
  }

  /** Incoming TCP handshakes under way. */
  get handshakesUnderWay(): number {
    return this.admission.active
  }

  /** The UDP endpoint (stats), when there is one. */
  get udpEndpoint(): UdpChannels['endpoint'] | undefined {
    return this.udp?.endpoint
  }

  /** Starts listening; returns the connectionInfo to publish. */
  async listen(): Promise<ConnectionInfoEntry[]> {
    const ctx = this.ctx
    this.handshake = new ServerHandshake({ identity: ctx.identity, limits: STREAM_LIMITS, auth: 'signid' })
    let info: ConnectionInfoEntry[] = []
    if (this.options.tcp !== false) {
      this.listener = new TcpListener((socket) => this.accept(socket))
      await this.listener.listen(this.options.tcp ?? {})
      info = this.listener.connectionInfo()
    }
    if (this.options.udp !== false) {
      // Loaded here, not on import: the UDP stream (CurveCP's message layer, its buffers and
      // congestion control, about a fifth of the package) costs a process that never uses UDP
      // only load time.
      const { UdpChannels } = await import('./udp-channels.js')
      if (this.ctx.closed) return info
      this.udp = new UdpChannels({
        identity: ctx.identity,
        timings: udpChannelTimings(ctx.timings),
        // Hellos and new-session Initiates cost public-key work: rate-limited per address.
        admit: (address) => this.admission.allow(address),
        ...(this.options.maxUdpSessions !== undefined ? { maxSessions: this.options.maxUdpSessions } : {}),
        // A full session table drops the least recently useful stranger's session, never a circle's.
        strangers: {
          isStranger: (signId) => isStranger(ctx.host, signId),
          rank: (signId) => ctx.peers.get(signId)?.lastMessageAt ?? 0,
          evicted: () => void ctx.counts.udpSessionEvicted++
        }
      })
      this.udp.onChannel((channel) => this.acceptChannel(channel, channel.remote))
      await this.udp.listen(this.options.udp ?? {})
      info = [...info, ...this.udp.connectionInfo()]
    }
    return info
  }

  /** Dials the peer if it is idle and the manager running (peer.ts: a dial starts from idle only). */
  ensureChannel(peer: Peer): void {
    if (!this.ctx.started || this.ctx.closed || peer.state !== 'idle') return
    peer.dialStarted() // before dial() runs: a send from inside it must not start another
    void this.dial(peer)
      .catch((err: unknown) => {
        this.ctx.logger.debug({ err, peer: peer.signId }, 'dial failed')
        this.options.forgetNodeInfo?.(peer.signId)
        this.sender.failRealtime(peer, () => new DeliveryError('ERR_UNREACHABLE', `cannot reach ${peer.signId} now (realtime message): ${describe(err)}`, { cause: err }))
      })
      .finally(() => {
        peer.dialEnded()
        this.reconnecting.timersSessionLost(peer) // no channel came of it: back off while messages wait
      })
  }

  private async dial(peer: Peer): Promise<void> {
    const nodeInfo = await this.options.getNodeInfo(peer.signId)
    if (this.ctx.closed) return
    const signKey = parseId(peer.signId)
    const boxKey = signKey ? signPublicToBoxPublic(signKey) : null
    if (!boxKey || nodeInfo.boxId !== boxKey.toString('base64')) throw new DeliveryError('ERR_UNREACHABLE', `nodeInfo for ${peer.signId} has a boxId that is not derived from it`)
    const targets = nodeInfo.connectionInfo.map(tcpTarget).filter((t): t is Target => t !== null)
    const udp = this.udp
    const udpTargets = udp ? nodeInfo.connectionInfo.map(udpTarget).filter((t): t is Target => t !== null) : []
    if (targets.length + udpTargets.length === 0) throw new DeliveryError('ERR_UNREACHABLE', `nodeInfo for ${peer.signId} lists no transport we can dial`)
    const timeoutMs = this.ctx.timings.handshakeTimeoutMs
    // Every address of every transport at once; the first authenticated channel wins.
    // The Hello is made while the kernel connects (the connect syscall is node:net's next tick,
    // queued first) and waits in the socket, which writes it from within its connect event.
    const attempts: Array<Promise<Channel>> = targets.map(async (t, index) => {
      const socket = connectTcp(t.address, t.port)
      await afterTick()
      let channel: TcpChannel
      try {
        channel = TcpChannel.client(socket, {
          identity: this.ctx.identity,
          remoteSignId: peer.signId,
          remoteBoxId: nodeInfo.boxId,
          limits: STREAM_LIMITS,
          handshakeTimeoutMs: timeoutMs
        })
      } catch (err) {
        void socket.close()
        throw err
      }
      if (index === 0) this.sender.sendEarly(peer, channel)
      return this.handshakeDone(channel)
    })
    // Happy Eyeballs: TCP first; UDP after a head start unless a session is up by then. On
    // loopback UDP wins a plain race (no TCP handshake) but our UDP stream moves ~35-50 MB/s
    // against TCP's ~240 here, so an even race would put most sessions on the slow path.
    const headStart = targets.length ? this.ctx.timings.udpHeadStartMs : 0
    let won = false
    for (const t of udpTargets) {
      attempts.push(
        new Promise<void>((resolve) => {
          if (!headStart) return resolve()
          const timer = setTimeout(resolve, headStart)
          timer.unref()
        }).then(() => {
          if (won || this.ctx.closed || !udp) throw new DeliveryError('ERR_UNREACHABLE', 'another transport connected first')
          return this.handshakeDone(udp.dial(t.address, t.port, { remoteSignId: peer.signId, remoteBoxId: nodeInfo.boxId, handshakeTimeoutMs: timeoutMs }))
        })
      )
    }
    // First authenticated channel wins; the others are closed as they finish.
    await new Promise<void>((resolve, reject) => {
      let failed = 0
      let lastError: unknown
      for (const attempt of attempts) {
        attempt.then(
          (channel) => {
            if (won || this.ctx.closed) return void channel.close()
            if (this.ctx.peers.get(peer.signId) !== peer) {
              // Evicted meanwhile (limits.ts): its late channel is not kept.
              void channel.close()
              if (++failed === attempts.length) reject(new DeliveryError('ERR_UNREACHABLE', `${peer.signId} was evicted from the peer table`))
              return
            }
            won = true
            this.sessions.attach(peer, channel)
            resolve()
          },
          (err: unknown) => {
            lastError = err
            if (++failed === attempts.length && !won) reject(lastError)
          }
        )
      }
    })
  }

  /** Resolves with the channel once it is secure; rejects if it closes first. */
  private handshakeDone<C extends Channel>(channel: C): Promise<C> {
    this.handshaking.add(channel)
    return new Promise((resolve, reject) => {
      const onSecure = (): void => {
        channel.off('close', onClose)
        this.handshaking.delete(channel)
        resolve(channel)
      }
      const onClose = (err?: Error): void => {
        channel.off('secure', onSecure)
        this.handshaking.delete(channel)
        reject(err ?? new ProtocolError('ERR_HANDSHAKE', 'channel closed during the handshake'))
      }
      channel.once('secure', onSecure)
      channel.once('close', onClose)
    })
  }

  private accept(socket: PacketSocket): void {
    if (this.ctx.closed || !this.handshake) return void socket.close()
    const key = {}
    if (!this.admission.begin(key, addressOf(socket.remote), () => void socket.close())) return void socket.close()
    const channel = TcpChannel.server(socket, { handshake: this.handshake, handshakeTimeoutMs: this.ctx.timings.handshakeTimeoutMs })
    channel.once('secure', () => this.admission.end(key))
    channel.once('close', () => this.admission.end(key))
    this.acceptChannel(channel, socket.remote)
  }

  /** An incoming channel (TCP or UDP): once authenticated, it joins its peer. */
  private acceptChannel(channel: Channel, remote: string): void {
    if (this.ctx.closed) return void channel.close()
    this.handshakeDone(channel).then(
      (c) => {
        const peer = c.remoteSignId ? this.ctx.table.admit(c.remoteSignId) : undefined
        if (!peer && !this.ctx.closed) this.ctx.counts.peerTableFull++
        if (!peer || this.ctx.closed) return void c.close()
        this.sessions.attach(peer, c)
      },
      (err: unknown) => {
        this.ctx.counts.handshakeFailed++
        this.ctx.logger.debug({ err, remote }, 'incoming handshake failed')
      }
    )
  }

  /** Closes the handshakes under way, the listener and the UDP endpoint. Idempotent: one shared promise. */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    for (const channel of this.handshaking) void channel.close()
    await this.listener?.close()
    await this.udp?.close()
    this.handshake?.close()
  }
}
