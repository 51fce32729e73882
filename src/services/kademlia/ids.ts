/**
 * Kademlia ids: 256-bit, SHA-256 of a public key, so they spread evenly whatever the keys. A node's
 * id is the hash of its signId's key; its nodeInfo is stored under that id and under the hash of
 * `box:` + its boxId key (for boxId -> signId lookups). Keys are hex text in messages and storage.
 */
import { createHash } from 'node:crypto'
import { parseId } from '../../identity/ids.js'
import type { NodeInfo } from '../../platform/node-info.js'

/** Length of a Kademlia id, bytes. */
export const ID_BYTES = 32

/** The id of the node whose signId is `signId`; null for a malformed signId. */
export function nodeIdOf(signId: string): Buffer | null {
  const key = parseId(signId)
  return key ? createHash('sha256').update(key).digest() : null
}

/** The key a node's nodeInfo is stored under for boxId -> signId lookups. */
export function boxKeyOf(boxId: string): Buffer | null {
  const key = parseId(boxId)
  return key ? createHash('sha256').update('box:').update(key).digest() : null
}

/** True when `nodeInfo` is a value that may be stored under `key` (one of its two keys). */
export function isValueFor(key: Buffer, nodeInfo: NodeInfo): boolean {
  const a = nodeIdOf(nodeInfo.signId)
  const b = boxKeyOf(nodeInfo.boxId)
  return (a !== null && a.equals(key)) || (b !== null && b.equals(key))
}

/** A hex id from the network: exactly 64 hex digits, else null. */
export function parseHexId(value: unknown): Buffer | null {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) return null
  return Buffer.from(value, 'hex')
}

/** -1, 0 or 1: whether `a` is closer to `target` than `b` (XOR metric). */
export function compareDistance(target: Uint8Array, a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < target.length; i++) {
    const da = (a[i] as number) ^ (target[i] as number)
    const db = (b[i] as number) ^ (target[i] as number)
    if (da !== db) return da < db ? -1 : 1
  }
  return 0
}
