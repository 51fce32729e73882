/**
 * `mm-platform/services/mainline`: a directory on the BitTorrent Mainline DHT, our nodeInfo as a
 * Pkarr record (a signed DNS packet in a BEP 44 mutable item).
 *
 * ```js
 * import Platform from 'mm-platform'
 * import { Mainline } from 'mm-platform/services/mainline'
 * const platform = new Platform()
 * const mainline = new Mainline({ platform })   // joins the public DHT; pass { bootstrap } for a private one
 * ```
 */
import { Mainline } from './mainline.js'
export default Mainline
export { Mainline, PUBLIC_BOOTSTRAP, type MainlineOptions, type MainlineStats } from './mainline.js'
export { encodeRecord, decodeRecord, bep44SigningBytes, MAX_VALUE_BYTES } from './pkarr-record.js'
export { NodeInfoGate, type DropReason } from '../shared/remote-node-info.js'
