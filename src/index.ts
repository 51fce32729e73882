/**
 * mm-platform: peer-to-peer, end-to-end encrypted messaging over CurveCP, and a local pub/sub
 * broker. The default export is the {@link Platform} class:
 *
 * ```js
 * import Platform from 'mm-platform'          // or: const Platform = require('mm-platform')
 * const platform = new Platform()
 * platform.messaging.on('self.test.hello', (topic, sender, payload) => console.log(payload))
 * platform.messaging.send('test.hello', 'local', { hi: 1 })
 * await platform.close()   // a node stays up (store, sockets) until closed
 * ```
 *
 * TypeScript: types for ESM and CommonJS alike; they need `@types/node` (`"types": ["node"]`).
 */
import { Platform } from './platform/platform.js'

export default Platform
export { Platform }
export type { PlatformOptions, PlatformOutbox, PlatformStats, RemoteRouter } from './platform/platform.js'
export type { DeliveryOptions, MessageFate, PendingMessage } from './connections/manager.js'
export { isControlTopic } from './platform/platform.js'
export { API, binaryCodec, type APIOptions } from './platform/api.js'
export { Layer, type MessageLayer } from './platform/layer.js'
export { Circle, type CircleLike } from './platform/circle.js'
export {
  Directory,
  NODE_INFO_MAX_AGE_MS,
  NODE_INFO_MAX_FUTURE_MS,
  NODE_INFO_RESIGN_MS,
  type DirectoryLike,
  type DirectoryOptions,
  type NodeInfoRefusal
} from './platform/directory.js'
export { checkNodeInfo, nodeInfoSigningBytes, type NodeInfo, type ConnectionInfoEntry } from './platform/node-info.js'
export { matches as topicMatches, type TopicHandler } from './platform/topic-emitter.js'
export type { Message, OutgoingMessage, SendOptions, Scope } from './platform/message.js'
export { Identity, type IdentityLike, type IdentityOptions } from './identity/identity.js'
export { isId, parseId } from './identity/ids.js'
export { MemoryStore } from './storage/memory-store.js'
export { LevelStore, defaultDataDir, type LevelStoreOptions } from './storage/level-store.js'
export type { KadStore, StoreEntry } from './storage/store.js'
export { silentLogger, createConsoleLogger, type Logger } from './logger.js'
export {
  MMError,
  InvalidArgumentError,
  StorageError,
  IdentityError,
  StateError,
  HandlerError,
  DeliveryError,
  DecodeError,
  ProtocolError,
  LookupError,
  TransportError,
  type ErrorCode
} from './errors.js'
