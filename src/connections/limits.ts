/**
 * The bounds of the connection layer, in one place (README "Resource budget" and docs/wire.md
 * list each with what happens at it). Options override the defaults.
 *
 * Peers in a circle (friends, devices: the host's scopeOf() is not 'public') and strangers get
 * separate budgets: strangers have a small frame bound, a deadline to finish a frame, fewer
 * channels, and a share of the peer table; when the table is full the least recently useful
 * stranger is evicted, never a friend or device.
 */
import type { Scope } from './message-types.js'

/** What the bounds need of the platform: whether a peer is in a circle. */
export interface ScopeSource {
  scopeOf(signId: string): Scope
}
import { Peer } from './peer.js'

/** Per peer: most messages waiting (queued or unacknowledged). */
export const DEFAULT_MAX_QUEUED_MESSAGES = 10_000
/** Per peer: most bytes queued (ERR_QUEUE_FULL beyond). */
export const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024
/** Queued bytes per peer at which send() starts saying false (like a stream's highWaterMark). */
export const HIGH_WATER_BYTES = 4 * 1024 * 1024
/** Most peers tracked at once (each holds at most its queue bounds). */
export const MAX_PEERS = 10_000
/** Of those, most strangers (the rest is kept for friends and devices). */
export const MAX_STRANGER_PEERS = 8_000
/** Open sessions kept per peer in a circle when it dials us several times at once. */
export const MAX_CHANNELS_PER_PEER = 4
/** The same for a stranger. */
export const MAX_CHANNELS_PER_STRANGER = 2
/** Largest frame a stranger may send us (circles: maxFrameBytes, 32 MiB by default). */
export const STRANGER_MAX_FRAME_BYTES = 1024 * 1024
/** A stranger's frame, once begun, must be complete within this (else the channel closes). */
export const STRANGER_FRAME_DEADLINE_MS = 10_000
/**
 * Per channel: acknowledgements held while the peer does not read what we send (our outgoing
 * buffer is past its high-water mark). A peer that keeps sending without reading passes this and
 * is disconnected. A well-behaved sender has at most its queue bound (10,000) unacknowledged.
 */
export const MAX_HELD_ACK_IDS = 65_536
/** Per channel: outgoing bytes beyond one frame of ours at most; past it the channel closes. */
export const OUTGOING_SLACK_BYTES = 8 * 1024 * 1024

/** The bounds in force for one connection manager. */
export interface ConnectionLimits {
  maxFrameBytes: number
  maxQueuedMessages: number
  maxQueuedBytes: number
  /** send() says false at this many queued bytes; `drain` follows when the queue is empty. */
  highWaterBytes: number
  /** Most peers tracked at once. */
  maxPeers: number
  /** Most strangers among them. */
  maxStrangerPeers: number
  strangerMaxFrameBytes: number
  strangerFrameDeadlineMs: number
  maxHeldAckIds: number
  /** Per channel, bytes written and not yet gone; past it the peer is not reading: closed. */
  maxOutgoingBytes: number
}

/** Is `signId` a stranger (in no circle of ours)? */
export function isStranger(host: ScopeSource, signId: string): boolean {
  return host.scopeOf(signId) === 'public'
}

/** The frame bound for what `signId` sends us. */
export function frameBoundFor(host: ScopeSource, limits: ConnectionLimits, signId: string): number {
  return isStranger(host, signId) ? Math.min(limits.strangerMaxFrameBytes, limits.maxFrameBytes) : limits.maxFrameBytes
}

/**
 * The peer table. Idle peers with nothing waiting are forgotten first; strangers may hold at most
 * maxStrangerPeers entries, and past that (or when the table is full) the least recently useful
 * stranger is evicted through `evict` (its channels are closed, its messages fail). Friends and
 * devices are never evicted to make room.
 */
export class PeerTable {
  readonly peers: Map<string, Peer>
  private readonly host: ScopeSource
  private readonly limits: ConnectionLimits
  private readonly evict: (peer: Peer) => void

  constructor(peers: Map<string, Peer>, host: ScopeSource, limits: ConnectionLimits, evict: (peer: Peer) => void) {
    this.peers = peers
    this.host = host
    this.limits = limits
    this.evict = evict
  }

  /**
   * The peer for `signId`, created if new; undefined when there is no room for it. `local`: for a
   * message of ours (then only a stranger with nothing of ours waiting may be evicted for it);
   * else for an incoming session.
   */
  admit(signId: string, local = false): Peer | undefined {
    let peer = this.peers.get(signId)
    if (peer) return peer
    const stranger = isStranger(this.host, signId)
    if (this.peers.size >= this.limits.maxPeers) this.evictIdle()
    if (stranger && this.strangerCount() >= this.limits.maxStrangerPeers) {
      if (!this.evictIdle(true) && !this.evictStranger(local)) return undefined
    }
    if (this.peers.size >= this.limits.maxPeers && !this.evictStranger(local)) return undefined
    peer = new Peer(signId)
    this.peers.set(signId, peer)
    return peer
  }

  strangerCount(): number {
    let n = 0
    for (const id of this.peers.keys()) if (isStranger(this.host, id)) n++
    return n
  }

  /** Forgets an idle peer with nothing waiting (a stranger one when `strangersOnly`). */
  private evictIdle(strangersOnly = false): boolean {
    for (const [id, p] of this.peers) {
      if ((p.state === 'idle' || p.state === 'backoff') && !p.dialing && p.waiting === 0 && p.channels.length === 0) {
        if (strangersOnly && !isStranger(this.host, id)) continue
        p.stop()
        this.peers.delete(id)
        return true
      }
    }
    return false
  }

  /**
   * Evicts the stranger whose last message (either way; keepalives do not count) is oldest;
   * with `idleOnly`, only one with nothing of ours waiting.
   */
  private evictStranger(idleOnly: boolean): boolean {
    let victim: Peer | undefined
    for (const [id, p] of this.peers) {
      if (!isStranger(this.host, id) || (idleOnly && p.waiting > 0)) continue
      if (!victim || p.lastMessageAt < victim.lastMessageAt) victim = p
    }
    if (!victim) return false
    this.peers.delete(victim.signId)
    this.evict(victim)
    return true
  }
}
