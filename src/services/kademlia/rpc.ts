/**
 * Kademlia messages, carried as platform `ms` messages (JSON) on topic `kademlia.rpc` (requests)
 * and `kademlia.reply` (replies). Pure codec: shapes checked here, nodeInfos checked by the caller's
 * NodeInfoGate.
 *
 * request: `{ id, q: 'ping'|'store'|'find_node'|'find_value', from: NodeInfo, key?: hex, value?: NodeInfo }`
 * reply:   `{ id, r: q, nodes?: NodeInfo[], value?: NodeInfo }`
 * `from` is the sender's signed nodeInfo; its signId must be the message's authenticated sender.
 */

export const RPC_TOPIC = 'kademlia.rpc'
export const REPLY_TOPIC = 'kademlia.reply'
export type Method = 'ping' | 'store' | 'find_node' | 'find_value'
const METHODS = new Set<string>(['ping', 'store', 'find_node', 'find_value'])
/** Longest request id accepted, characters. */
export const MAX_RPC_ID_LENGTH = 24
/** Most nodes in one reply (K). */
export const MAX_REPLY_NODES = 20

export interface Request {
  id: string
  q: Method
  from: unknown
  key?: string
  value?: unknown
}

export interface Reply {
  id: string
  r: Method
  nodes?: unknown[]
  value?: unknown
}

/** A request from the network, or null when its shape is wrong. */
export function parseRequest(payload: unknown): Request | null {
  const p = payload as Record<string, unknown> | null
  if (!p || typeof p !== 'object') return null
  if (typeof p.id !== 'string' || p.id.length === 0 || p.id.length > MAX_RPC_ID_LENGTH) return null
  if (typeof p.q !== 'string' || !METHODS.has(p.q)) return null
  if (!p.from || typeof p.from !== 'object') return null
  if (p.q !== 'ping' && typeof p.key !== 'string') return null
  if (p.q === 'store' && (!p.value || typeof p.value !== 'object')) return null
  return { id: p.id, q: p.q as Method, from: p.from, key: p.key as string | undefined, value: p.value }
}

/** A reply from the network, or null when its shape is wrong. */
export function parseReply(payload: unknown): Reply | null {
  const p = payload as Record<string, unknown> | null
  if (!p || typeof p !== 'object') return null
  if (typeof p.id !== 'string' || p.id.length === 0 || p.id.length > MAX_RPC_ID_LENGTH) return null
  if (typeof p.r !== 'string' || !METHODS.has(p.r)) return null
  if (p.nodes !== undefined && (!Array.isArray(p.nodes) || p.nodes.length > MAX_REPLY_NODES)) return null
  return { id: p.id, r: p.r as Method, nodes: p.nodes as unknown[] | undefined, value: p.value }
}
