/**
 * The control topics and the counters of what the platform refused. Control topics change this
 * node's circles and directory, so only the local node may send them (DESIGN: Trust and budgets).
 */

/**
 * Topics that change this node's circles or directory: only the local node may send them
 * (unless `controlFromDevices`). Their scope is not enough: a remote node in our devices circle
 * is scoped `self`.
 */
export function isControlTopic(topic: string): boolean {
  return topic.startsWith('transports.') || topic.startsWith('directory.') || topic === 'friends.update' || topic === 'devices.update'
}

/** What the platform refused and why (see {@link Platform.stats}). */
export interface PlatformStats {
  /** signIds with an open secure session. */
  connectedPeers: string[]
  /** Handshake packets refused by the connection layer, by reason. */
  handshakeDrops: Readonly<Record<string, number>>
  /** nodeInfo refused by the directory, by reason (see Directory.accept). */
  nodeInfoRefused: Readonly<Record<string, number>>
  /** Messages on control topics from remote senders, dropped unread, by topic. */
  controlDrops: Readonly<Record<string, number>>
  /** Remote messages whose payload did not decode. */
  undecodable: number
}
