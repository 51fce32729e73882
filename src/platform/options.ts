/** The Platform's constructor options, and what it needs of the connection layer below it. */
import type { Logger } from '../logger.js'
import type { KadStore } from '../storage/store.js'
import type { IdentityLike } from '../identity/identity.js'
import type { ConnectionTimings } from '../connections/timings.js'
import type { ConnectionManagerOptions, ConnectionStats, DeliveryOptions, PendingMessage } from '../connections/manager.js'
import type { TcpListenOptions } from '../transports/tcp.js'
import type { UdpListenOptions } from '../transports/udp.js'
import type { CircleLike } from './circle.js'
import type { Directory, DirectoryLike } from './directory.js'
import type { ConnectionInfoEntry } from './node-info.js'
import type { OutgoingMessage, SendOptions } from './message.js'

/** Constructor options; every one is optional. `D` is the type of the `directory` option. */
export interface PlatformOptions<D extends DirectoryLike = Directory> {
  /** A kad-fs compatible store. Default: a {@link LevelStore} in `dataDir`. */
  storage?: KadStore
  /** Data directory of the default store. Default: `$MM_PLATFORM_DATA` or `~/.mm-platform`. */
  dataDir?: string
  /**
   * Default store only: repair damaged or lost storage, logging a warning that says what was
   * lost, instead of failing `ready` with ERR_STORAGE_CORRUPT / ERR_STORAGE_LOST. Default false.
   */
  repairStorage?: boolean
  /** An alternative identity object; default: the one kept in storage under `identity`. */
  identity?: IdentityLike
  /** Encrypts the stored identity (Argon2id + secretbox); needed to load one stored encrypted. */
  passphrase?: string
  /** Our friends: a circle object, or an array of signIds. */
  friends?: CircleLike | string[]
  /** Our own other devices: a circle object, or an array of signIds. */
  devices?: CircleLike | string[]
  /** An alternative directory object (`platform.directory` then has its type). */
  directory?: D
  /** Fixed connectionInfo to publish (instead of what the transports listen on). */
  connectionInfo?: ConnectionInfoEntry[]
  /** A pino-compatible logger; default: silent. */
  logger?: Logger
  /** Where to listen for TCP; false: do not listen (this node only dials). Default: all interfaces, a free port. */
  tcp?: TcpListenOptions | false
  /** Where to listen for UDP (CurveCP as specified); false: no UDP. Default: all interfaces, a free port. */
  udp?: UdpListenOptions | false
  /**
   * Keep the TCP and UDP ports across restarts (stored; a busy one is replaced and the new one
   * stored). A port given in `tcp` / `udp` wins. Default true.
   */
  stablePorts?: boolean
  /** Connection layer settings: timers (mostly for tests) and bounds. */
  connections?: {
    timings?: Partial<ConnectionTimings>
    /** Largest platform frame accepted, bytes (default 32 MiB). */
    maxFrameBytes?: number
    /** Per peer: most messages waiting (default 10,000). */
    maxQueuedMessages?: number
    /** Per peer: most bytes waiting (default 256 MiB); send() returns false above half. */
    maxQueuedBytes?: number
    /** Most peers tracked at once (default 10,000); a message to one more fails with ERR_QUEUE_FULL. */
    maxPeers?: number
  } & Partial<Pick<ConnectionManagerOptions, 'maxStrangerPeers' | 'strangerMaxFrameBytes' | 'strangerFrameDeadlineMs' | 'maxHeldAckIds' | 'maxOutgoingBytes' | 'admission' | 'maxUdpSessions'>>
  /**
   * The persistent outbox of non-realtime messages: bounds (ERR_QUEUE_FULL past them), the clock
   * used for expiry (tests), how often expired messages are removed, `sync` for power-loss safety.
   */
  outbox?: DeliveryOptions
  /**
   * Let nodes in our `devices` circle drive the control topics (`transports.*`, `directory.*`,
   * `friends.update`, `devices.update`) as if they were the local node. Default false: messages
   * on those topics from any remote sender are dropped and counted ({@link Platform.stats}),
   * whatever their scope. Even when true, unsigned nodeInfo is taken from the local node only.
   */
  controlFromDevices?: boolean
  /** Directory timings, mostly for tests. */
  publishIntervalMs?: number
  nodeInfoTtlMs?: number
  lookupTimeoutMs?: number
}

/** Where a remote destination goes: the connection layer. */
export interface RemoteRouter {
  send(message: OutgoingMessage, options: SendOptions): boolean
  start(): Promise<ConnectionInfoEntry[]>
  connectedPeers(): string[]
  disconnect(signId: string): Promise<void>
  readonly handshakeDrops: Readonly<Record<string, number>>
  stats(): ConnectionStats
  /** The persistent outbox, when the router has one. */
  readonly outbox?: PlatformOutbox
  close(): Promise<void>
}

/** `platform.outbox`: the messages waiting in the persistent outbox. */
export interface PlatformOutbox {
  /** Pending messages (destination, topic, size, age, expiry), oldest first per destination. */
  list(limit?: number): Promise<PendingMessage[]>
  /** Removes a pending message; `failed` fires with ERR_CANCELLED. False when it was not pending. */
  cancel(destination: string, id: string): Promise<boolean>
  /** Removes expired messages now (each fails with ERR_EXPIRED); resolves with how many. */
  expire(): Promise<number>
}
