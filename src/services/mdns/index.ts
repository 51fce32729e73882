/**
 * `mm-platform/services/mdns`: LAN discovery by multicast DNS.
 *
 * ```js
 * import Platform from 'mm-platform'
 * import { MulticastDNS } from 'mm-platform/services/mdns'
 * const platform = new Platform()
 * const mdns = new MulticastDNS({ platform })
 * mdns.on('peer', (nodeInfo) => console.log('found', nodeInfo.signId))
 * ```
 */
import { MulticastDNS } from './mdns.js'
export default MulticastDNS
export { MulticastDNS, SERVICE_TYPE, instanceName, type MulticastDNSOptions, type MulticastDNSStats } from './mdns.js'
export { NodeInfoGate, type DropReason, NODE_INFO_MAX_AGE_MS, NODE_INFO_MAX_SKEW_MS, MAX_NODE_INFO_BYTES } from '../shared/remote-node-info.js'
