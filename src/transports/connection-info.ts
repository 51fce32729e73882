/**
 * Where a node can be reached: the types the transports publish and the dialler reads, and the
 * check of one from anywhere (checkNodeInfo). The platform's directory signs ours and checks
 * what it is given (platform/node-info.ts); the connection layer checks the nodeInfo it stored
 * (connections/stored-node-info.ts), hence this layer.
 *
 * Ours: the nodeInfo a node publishes of itself also carries `timestamp` (ms) and `signature`,
 * base64 of an Ed25519 signature by the signId's key over {@link nodeInfoSigningBytes}, so that
 * a nodeInfo relayed by anyone (a DHT, a stranger) can be checked before use and an older one
 * cannot replace a newer one. Unsigned nodeInfo is still accepted from local services (the seed's
 * own example sends one); a signature that is present must verify.
 */
import { signPublicToBoxPublic, equalBytes, verify, SIGNATURE_BYTES } from '../crypto/sodium.js'
import { parseId } from '../identity/ids.js'

export interface ConnectionInfoEntry {
  transportType: string
  transportInfo: Record<string, unknown>
}

export interface NodeInfo {
  boxId: string
  signId: string
  connectionInfo: ConnectionInfoEntry[]
  /** When the node signed this (ms since the epoch); present with `signature`. */
  timestamp?: number
  /** base64 Ed25519 signature by signId over nodeInfoSigningBytes(). */
  signature?: string
}

const SIGNING_CONTEXT = 'mm-platform/nodeInfo/v1\n'

/** JSON with object keys sorted at every level: one byte string per value. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']'
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>
    return '{' + Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}'
  }
  return JSON.stringify(value) ?? 'null'
}

/** The bytes a nodeInfo's signature covers: context, signId, boxId, connectionInfo, timestamp. */
export function nodeInfoSigningBytes(n: { signId: string; boxId: string; connectionInfo: ConnectionInfoEntry[]; timestamp: number }): Buffer {
  return Buffer.from(SIGNING_CONTEXT + canonicalJson([n.signId, n.boxId, n.connectionInfo, n.timestamp]), 'utf8')
}

/** Most connectionInfo entries accepted in one nodeInfo. */
export const MAX_CONNECTION_INFO = 16

/**
 * Checks a nodeInfo from anywhere: well-formed ids, boxId = ed2curve(signId), bounded
 * connectionInfo. Returns a clean copy, or a reason it is refused.
 */
export function checkNodeInfo(value: unknown): { nodeInfo: NodeInfo } | { reason: string } {
  if (!value || typeof value !== 'object') return { reason: 'nodeInfo must be an object' }
  const v = value as Record<string, unknown>
  const signKey = parseId(v.signId)
  if (!signKey) return { reason: 'signId is not base64 of 32 bytes' }
  const boxKey = parseId(v.boxId)
  if (!boxKey) return { reason: 'boxId is not base64 of 32 bytes' }
  const derived = signPublicToBoxPublic(signKey)
  if (!derived || !equalBytes(derived, boxKey)) return { reason: 'boxId is not the key derived from signId' }
  const ci = v.connectionInfo ?? []
  if (!Array.isArray(ci)) return { reason: 'connectionInfo must be an array' }
  if (ci.length > MAX_CONNECTION_INFO) return { reason: `connectionInfo has more than ${MAX_CONNECTION_INFO} entries` }
  const connectionInfo: ConnectionInfoEntry[] = []
  for (const entry of ci as unknown[]) {
    const e = entry as Record<string, unknown> | null
    if (!e || typeof e.transportType !== 'string' || !e.transportInfo || typeof e.transportInfo !== 'object') {
      return { reason: 'each connectionInfo entry needs a transportType string and a transportInfo object' }
    }
    connectionInfo.push({ transportType: e.transportType, transportInfo: { ...(e.transportInfo as Record<string, unknown>) } })
  }
  const nodeInfo: NodeInfo = { boxId: v.boxId as string, signId: v.signId as string, connectionInfo }
  if (v.signature !== undefined || v.timestamp !== undefined) {
    const timestamp = v.timestamp
    const signature = typeof v.signature === 'string' ? Buffer.from(v.signature, 'base64') : undefined
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || !signature || signature.length !== SIGNATURE_BYTES) {
      return { reason: 'a signed nodeInfo needs a finite timestamp and a 64-byte base64 signature' }
    }
    if (!verify(signature, nodeInfoSigningBytes({ ...nodeInfo, timestamp }), signKey)) return { reason: 'the nodeInfo signature does not verify' }
    nodeInfo.timestamp = timestamp
    nodeInfo.signature = v.signature as string
  }
  return { nodeInfo }
}
