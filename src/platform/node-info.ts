/**
 * nodeInfo: how to reach a node. `{boxId, signId, connectionInfo}` as the seed README defines it;
 * connectionInfo is an array of `{transportType, transportInfo}` (one per transport).
 */
import { signPublicToBoxPublic, equalBytes } from '../crypto/sodium.js'
import { parseId } from '../identity/ids.js'

export interface ConnectionInfoEntry {
  transportType: string
  transportInfo: Record<string, unknown>
}

export interface NodeInfo {
  boxId: string
  signId: string
  connectionInfo: ConnectionInfoEntry[]
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
  return { nodeInfo: { boxId: v.boxId as string, signId: v.signId as string, connectionInfo } }
}
