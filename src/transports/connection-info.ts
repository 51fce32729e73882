/**
 * Where a node can be reached: the types the transports publish and the dialler reads. The
 * platform's directory checks and signs them (platform/node-info.ts).
 */

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
