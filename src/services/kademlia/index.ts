/**
 * `mm-platform/services/kademlia`: a Kademlia DHT over the platform's own messaging.
 *
 * ```js
 * import Platform from 'mm-platform'
 * import { Kademlia } from 'mm-platform/services/kademlia'
 * const platform = new Platform()
 * const dht = new Kademlia({ platform, storage: kadfs('./data/dht'), bootstrap: [someSignedNodeInfo] })
 * ```
 */
import { Kademlia } from './kademlia.js'
export default Kademlia
export { Kademlia, type KademliaOptions, type KademliaStats, RPC_TIMEOUT_MS, REPUBLISH_MS } from './kademlia.js'
export { K, ALPHA } from './lookup.js'
export { nodeIdOf, boxKeyOf } from './ids.js'
export { NodeInfoGate, type DropReason } from '../shared/remote-node-info.js'
