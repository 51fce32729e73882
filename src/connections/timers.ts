/**
 * Every timer of the connection layer (values in timings.ts): one tick for all peers, and the
 * reconnect backoff of each. Hooks are named for the event that arms them (`timersX`), the
 * tick's checks for what expired (`expiredX`). All are released by stop() and Peer.stop().
 *
 * Each tick, per peer: messages past their expiry fail (ERR_EXPIRED) and realtime ones that
 * missed their chance (ERR_UNREACHABLE); a channel silent for deadAfterMs is closed
 * (ERR_TIMEOUT); one with no message for idleCloseMs and nothing waiting is closed; one we have
 * not written to for keepaliveMs gets a PING.
 */
import { DeliveryError, ProtocolError } from '../errors.js'
import type { ConnectionContext, Dialling, Reconnecting } from './context.js'
import { encodePing } from './frames.js'
import type { OutItem, Peer } from './peer.js'
import type { Sender } from './send.js'

export class Timers implements Reconnecting {
  private readonly ctx: ConnectionContext
  private readonly sender: Sender
  private readonly dialling: Dialling
  private tick: NodeJS.Timeout | undefined

  constructor(ctx: ConnectionContext, sender: Sender, dialling: Dialling) {
    this.ctx = ctx
    this.sender = sender
    this.dialling = dialling
  }

  /** Starts the tick (unref'd: it never keeps the process alive). */
  start(): void {
    this.tick = setInterval(() => this.onTick(), this.ctx.timings.tickMs)
    this.tick.unref()
  }

  /** Stops the tick (each peer's backoff timer goes with Peer.stop()). */
  stop(): void {
    if (this.tick) clearInterval(this.tick)
    this.tick = undefined
  }

  /**
   * A dial failed, or the last session closed: while messages wait, dial again after a delay
   * that doubles from reconnectMinMs up to reconnectMaxMs (reset once connected).
   */
  timersSessionLost(peer: Peer): void {
    if (this.ctx.closed || peer.state !== 'idle' || peer.waiting === 0) return
    const t = this.ctx.timings
    const ms = peer.backoffMs ? Math.min(peer.backoffMs * 2, t.reconnectMaxMs) : t.reconnectMinMs
    peer.backoff(ms, () => this.dialling.ensureChannel(peer))
  }

  private onTick(): void {
    const now = Date.now()
    this.sender.checkDrains(true)
    for (const peer of this.ctx.peers.values()) {
      this.expiredMessages(peer, now)
      const channel = peer.channel
      if (!channel) continue
      const t = this.ctx.timings
      if (now - peer.lastReceivedAt >= t.deadAfterMs) {
        void channel.close(new ProtocolError('ERR_TIMEOUT', `no traffic from ${peer.signId} for ${t.deadAfterMs} ms`))
        continue
      }
      if (peer.waiting === 0 && now - peer.lastMessageAt >= t.idleCloseMs) {
        void channel.close()
        continue
      }
      if (now - peer.lastSentAt >= t.keepaliveMs) this.sender.queueFrame(peer, encodePing())
    }
  }

  /** Expiry of waiting messages; realtime ones that missed their chance. */
  private expiredMessages(peer: Peer, now: number): void {
    if (peer.queue.length) {
      const keep: OutItem[] = []
      for (const item of peer.queue) {
        if (item.expiresAt <= now) this.sender.fail(item, new DeliveryError('ERR_EXPIRED', `message to ${peer.signId} expired undelivered`))
        else if (item.realtime && item.writeBy <= now) this.sender.fail(item, new DeliveryError('ERR_UNREACHABLE', `${peer.signId} could not be reached in time (realtime message)`))
        else keep.push(item)
      }
      if (keep.length !== peer.queue.length) {
        peer.queue = keep
        peer.queuedBytes = keep.reduce((n, i) => n + i.frame.length, 0)
      }
    }
    for (const item of peer.inflight.values()) {
      if (item.expiresAt <= now) {
        peer.inflight.delete(item.key)
        this.sender.fail(item, new DeliveryError('ERR_EXPIRED', `message to ${peer.signId} expired unacknowledged`))
      }
    }
  }
}
