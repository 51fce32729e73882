/**
 * A peer's sessions: an authenticated channel joins its peer (attach), becomes the active one,
 * a spare, or is closed (the choice is session-choice.ts, a pure function), and leaves when it
 * closes (detach): its unacknowledged messages go back to the queue, a spare takes over, or the
 * peer is disconnected and the reconnect timer starts.
 */
import { DeliveryError } from '../errors.js'
import type { Channel } from './channel.js'
import type { ConnectionContext, Reconnecting } from './context.js'
import { MAX_CHANNELS_PER_PEER, MAX_CHANNELS_PER_STRANGER, isStranger } from './limits.js'
import type { Peer } from './peer.js'
import type { Receiver } from './receive.js'
import type { Sender } from './send.js'
import { chooseSession } from './session-choice.js'

export class Sessions {
  private readonly ctx: ConnectionContext
  private readonly sender: Sender
  private readonly receiver: Receiver
  private readonly reconnecting: Reconnecting

  constructor(ctx: ConnectionContext, sender: Sender, receiver: Receiver, reconnecting: Reconnecting) {
    this.ctx = ctx
    this.sender = sender
    this.receiver = receiver
    this.reconnecting = reconnecting
  }

  /** Makes `channel` the peer's channel, a spare, or closes it if the existing one wins. */
  attach(peer: Peer, channel: Channel): void {
    this.receiver.listen(peer, channel)
    channel.on('drain', () => {
      // ACKs held while the peer did not read (send.ts) go now.
      if (peer.pendingAcks.has(channel)) this.sender.scheduleWrite(peer)
      if (peer.channel !== channel) return
      peer.blocked = false
      this.sender.flush(peer)
    })
    channel.once('close', (err?: Error) => this.detach(peer, channel, err))
    peer.lastReceivedAt = peer.lastSentAt = Date.now()
    this.choose(peer, channel)
    // Only now, with the peer's channel settled, may frames (0-RTT ones too) be delivered: a
    // handler's reply must find the channel, not start a dial back.
    channel.resume()
  }

  private choose(peer: Peer, channel: Channel): void {
    if (channel.state !== 'open') return
    const current = peer.channel
    peer.channels.push(channel)
    const stranger = isStranger(this.ctx.host, peer.signId)
    let choice = chooseSession({
      us: this.ctx.identity.getSignId(),
      current: current && { initiator: current.initiator, remoteSignId: peer.signId },
      fresh: { initiator: channel.initiator, remoteSignId: peer.signId },
      open: peer.channels.length,
      maxChannels: stranger ? MAX_CHANNELS_PER_STRANGER : MAX_CHANNELS_PER_PEER
    })
    if (choice === 'activate-drop-oldest') {
      this.ctx.counts.tooManyChannels++
      // A stranger past its channels keeps the ones it has: a new one cannot displace them.
      if (stranger) choice = 'refuse'
    }
    switch (choice) {
      case 'activate':
        return this.activate(peer, channel, true)
      case 'refuse':
        return void channel.close()
      case 'replace':
        this.activate(peer, channel, false)
        return void current?.close()
      case 'activate-keep-spare':
        return this.activate(peer, channel, false)
      case 'activate-drop-oldest':
        this.activate(peer, channel, false)
        return void peer.channels[0]?.close()
    }
  }

  private activate(peer: Peer, channel: Channel, announce: boolean): void {
    peer.connected(channel)
    peer.blocked = false
    peer.out = []
    peer.outBytes = 0
    peer.lastMessageAt = Date.now()
    if (announce) this.ctx.host.emit('connection', peer.signId)
    this.sender.requeueInflight(peer, (c) => c !== channel)
    this.sender.flush(peer)
  }

  private detach(peer: Peer, channel: Channel, err?: Error): void {
    if (err) this.ctx.logger.debug({ err, peer: peer.signId }, 'session closed')
    const i = peer.channels.indexOf(channel)
    if (i >= 0) peer.channels.splice(i, 1)
    if (peer.channel !== channel) return
    this.sender.requeueInflight(peer, (c) => c === channel)
    const next = [...peer.channels].reverse().find((c) => c.state === 'open')
    if (next && !this.ctx.closed) {
      this.activate(peer, next, false)
      return
    }
    peer.disconnected()
    if (this.ctx.closed) return
    this.ctx.host.emit('disconnected', peer.signId)
    this.sender.failRealtime(peer, () => new DeliveryError('ERR_UNREACHABLE', `the session to ${peer.signId} closed (realtime message)`))
    this.reconnecting.timersSessionLost(peer)
  }
}
