/**
 * nodeInfo: how to reach a node. `{boxId, signId, connectionInfo}` as the seed README defines it;
 * connectionInfo is an array of `{transportType, transportInfo}` (one per transport). Ours also
 * carries `timestamp` and `signature`; the check and the signed bytes are in
 * transports/connection-info.ts, so that the connection layer can check what it stored too.
 */
export { checkNodeInfo, nodeInfoSigningBytes, MAX_CONNECTION_INFO, type ConnectionInfoEntry, type NodeInfo } from '../transports/connection-info.js'
