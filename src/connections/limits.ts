/**
 * The bounds of the connection layer, in one place. Options override the defaults; a later
 * budgets/admission module (per peer, per node) takes these over.
 */
import { Peer } from './peer.js'

/** Per peer: most messages waiting (queued or unacknowledged). */
export const DEFAULT_MAX_QUEUED_MESSAGES = 10_000
/** Per peer: most bytes queued (ERR_QUEUE_FULL beyond). */
export const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024
/** Queued bytes per peer at which send() starts saying false (like a stream's highWaterMark). */
export const HIGH_WATER_BYTES = 4 * 1024 * 1024
/** Most peers tracked at once (each holds at most its queue bounds). */
export const MAX_PEERS = 10_000
/** Open sessions kept per peer when it dials us several times at once. */
export const MAX_CHANNELS_PER_PEER = 4

/** The bounds in force for one connection manager. */
export interface ConnectionLimits {
  maxFrameBytes: number
  maxQueuedMessages: number
  maxQueuedBytes: number
  /** send() says false at this many queued bytes; `drain` follows when the queue is empty. */
  highWaterBytes: number
  /** Most peers tracked at once. */
  maxPeers: number
}

/**
 * The peer for `signId`, created if new; undefined when the table is full of peers that are
 * busy (an idle one with nothing waiting is forgotten to make room).
 */
export function admitPeer(peers: Map<string, Peer>, signId: string, maxPeers: number): Peer | undefined {
  let peer = peers.get(signId)
  if (peer) return peer
  if (peers.size >= maxPeers) evictIdlePeer(peers)
  if (peers.size >= maxPeers) return undefined
  peer = new Peer(signId)
  peers.set(signId, peer)
  return peer
}

function evictIdlePeer(peers: Map<string, Peer>): void {
  for (const [id, p] of peers) {
    if ((p.state === 'idle' || p.state === 'backoff') && !p.dialing && p.waiting === 0) {
      p.stop()
      peers.delete(id)
      return
    }
  }
}
