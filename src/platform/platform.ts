/**
 * The Platform: one per node. A local pub/sub broker and (with transports) a secure messaging
 * endpoint, with a persistent identity, circles for scoping and a directory.
 *
 * Lifecycle: `new Platform()` starts at once; `ready` fires when the store is open and the
 * identity loaded or made; `await platform.ready()` does the same as a promise and rejects with
 * the start error (also emitted as `error` when someone listens). `await platform.close()`
 * releases everything; it is idempotent.
 */
import { EventEmitter } from 'node:events'
import {
  DecodeError,
  HandlerError,
  InvalidArgumentError,
  MMError,
  StateError,
  describe
} from '../errors.js'
import { silentLogger, type Logger } from '../logger.js'
import type { KadStore } from '../storage/store.js'
import { LevelStore } from '../storage/level-store.js'
import { PlatformStorage } from '../storage/platform-storage.js'
import { Identity, type IdentityLike } from '../identity/identity.js'
import { API, binaryCodec } from './api.js'
import { Circle, type CircleLike } from './circle.js'
import { Directory, type DirectoryLike } from './directory.js'
import { ConnectionManager, type ConnectionManagerOptions, type ConnectionStats } from '../connections/manager.js'
import type { ConnectionTimings } from '../connections/timings.js'
import type { TcpListenOptions } from '../transports/tcp.js'
import type { UdpListenOptions } from '../transports/udp.js'
import type { ConnectionInfoEntry } from './node-info.js'
import type { APIEndpoint, MessageLayer } from './layer.js'
import {
  LOCAL,
  MAX_PROTOCOL_LENGTH,
  MAX_TOPIC_LENGTH,
  type Message,
  type OutgoingMessage,
  type Scope,
  type SendOptions
} from './message.js'

/** Constructor options; every one is optional. */
export interface PlatformOptions {
  /** A kad-fs compatible store. Default: a {@link LevelStore} in `dataDir`. */
  storage?: KadStore
  /** Data directory of the default store. Default: `$MM_PLATFORM_DATA` or `~/.mm-platform`. */
  dataDir?: string
  /** An alternative identity object; default: the one kept in storage under `identity`. */
  identity?: IdentityLike
  /** Encrypts the stored identity (Argon2id + secretbox); needed to load one stored encrypted. */
  passphrase?: string
  /** Our friends: a circle object, or an array of signIds. */
  friends?: CircleLike | string[]
  /** Our own other devices: a circle object, or an array of signIds. */
  devices?: CircleLike | string[]
  /** An alternative directory object. */
  directory?: DirectoryLike
  /** Fixed connectionInfo to publish (instead of what the transports listen on). */
  connectionInfo?: ConnectionInfoEntry[]
  /** A pino-compatible logger; default: silent. */
  logger?: Logger
  /** Where to listen for TCP; false: do not listen (this node only dials). Default: all interfaces, a free port. */
  tcp?: TcpListenOptions | false
  /** Where to listen for UDP (CurveCP as specified); false: no UDP. Default: all interfaces, a free port. */
  udp?: UdpListenOptions | false
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
  /** Directory timings, mostly for tests. */
  publishIntervalMs?: number
  nodeInfoTtlMs?: number
  lookupTimeoutMs?: number
}

/** Where a remote destination goes: the connection layer. */
export interface RemoteRouter {
  send(message: OutgoingMessage, options: SendOptions): boolean
  start(): Promise<import('./node-info.js').ConnectionInfoEntry[]>
  connectedPeers(): string[]
  disconnect(signId: string): Promise<void>
  readonly handshakeDrops: Readonly<Record<string, number>>
  stats(): ConnectionStats
  close(): Promise<void>
}

type State = 'starting' | 'ready' | 'failed' | 'closing' | 'closed'

const CIRCLE_KEY_PREFIX = 'circle.'

export class Platform extends EventEmitter implements MessageLayer {
  /** JSON messages, protocol `ms`. */
  readonly messaging: API
  /** BitTorrent messages, protocol `bt`, binary payloads. */
  readonly torrenting: API
  readonly directory: DirectoryLike
  readonly friends: CircleLike
  readonly devices: CircleLike
  readonly logger: Logger
  /** The storage the platform uses (the given one, wrapped). */
  readonly storage: PlatformStorage
  private state: State = 'starting'
  private readonly starting: Promise<void>
  private closing: Promise<void> | undefined
  private readonly router: RemoteRouter
  /** API objects attached directly, by protocol (the fast path; see API.dispatchLocal). */
  private readonly apis = new Map<string, APIEndpoint[]>()

  constructor(options: PlatformOptions = {}) {
    super()
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options must be an object')
    this.logger = options.logger ?? silentLogger
    this.storage = new PlatformStorage(options.storage ?? new LevelStore({ dir: options.dataDir }))
    const identity = options.identity ?? new Identity(this.storage, { passphrase: options.passphrase, logger: this.logger })
    this.friends = toCircle('friends', options.friends)
    this.devices = toCircle('devices', options.devices)
    this.messaging = new API({ platform: this, protocol: 'ms' })
    this.torrenting = new API({ platform: this, protocol: 'bt', encode: binaryCodec.encode, decode: binaryCodec.decode })
    this.directory =
      options.directory ??
      new Directory({
        identity,
        messaging: this.messaging,
        logger: this.logger,
        connectionInfo: options.connectionInfo,
        publishIntervalMs: options.publishIntervalMs,
        ttlMs: options.nodeInfoTtlMs,
        lookupTimeoutMs: options.lookupTimeoutMs
      })
    this.router = new ConnectionManager({
      host: this,
      identity,
      getNodeInfo: (signId) => this.directory.getNodeInfo(signId),
      forgetNodeInfo: (signId) => this.directory.markStale?.(signId),
      logger: this.logger,
      tcp: options.tcp,
      udp: options.udp,
      ...options.connections
    })
    this.messaging.on('self.friends.update', (_t, _s, payload) => this.updateCircle('friends', this.friends, payload))
    this.messaging.on('self.devices.update', (_t, _s, payload) => this.updateCircle('devices', this.devices, payload))
    // A raw `message` listener must see local messages too: it turns the API fast path off.
    this.on('newListener', (event: string | symbol) => {
      if (event === 'message') this.updateSolo(true)
    })
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'message') this.updateSolo()
    })
    this.starting = this.start()
    this.starting.catch(() => {}) // reported in start(); callers of ready() still see the rejection
  }

  /** The identity in use (also `platform.directory.identity`, as in the seed README). */
  get identity(): IdentityLike {
    return this.directory.identity
  }

  /** True once `ready` has fired and until close. */
  isReady(): boolean {
    return this.state === 'ready'
  }

  /** Resolves when ready; rejects with the start error (a StorageError, an IdentityError, ...). */
  ready(): Promise<void> {
    return this.starting
  }

  private async start(): Promise<void> {
    try {
      await this.storage.open()
      if (typeof this.directory.identity.load === 'function') await this.directory.identity.load()
      await this.loadCircle('friends', this.friends)
      await this.loadCircle('devices', this.devices)
      if (this.state !== 'starting') return
      const connectionInfo = await this.router.start()
      if (this.directory.setConnectionInfo) this.directory.setConnectionInfo(connectionInfo)
      else this.logger.warn({ connectionInfo }, 'the custom directory has no setConnectionInfo: it does not learn where this node listens')
    } catch (err) {
      if (this.state === 'closing' || this.state === 'closed') throw err
      this.state = 'failed'
      this.logger.error({ err }, 'platform failed to start')
      if (this.listenerCount('error') > 0) this.emit('error', err)
      else if (this.logger === silentLogger) process.emitWarning(err instanceof Error ? err : new Error(describe(err)))
      await this.storage.close().catch(() => {})
      throw err
    }
    if (this.state !== 'starting') return
    this.state = 'ready'
    this.logger.info({ signId: this.identity.getSignId() }, 'platform ready')
    this.emit('ready')
    this.directory.start?.()
  }

  /** True for `'local'` and for our own signId. */
  isLocal(destination: string): boolean {
    if (destination === LOCAL) return true
    try {
      return destination === this.identity.getSignId()
    } catch {
      return false // identity not known yet: it cannot be ours
    }
  }

  /** Scope of a message from `sender`: `self` for local or our devices, `friends`, else `public`. */
  scopeOf(sender: string): Scope {
    if (sender === LOCAL || this.devices.inScope(sender)) return 'self'
    if (this.friends.inScope(sender)) return 'friends'
    return 'public'
  }

  /**
   * Low-level send. To `'local'` or our own signId the message is delivered in-process, now,
   * scoped `self` with sender `'local'`; to a signId it goes over a secure session, acknowledged
   * by the peer platform (`options.callback(null)`), or fails with a DeliveryError.
   * @returns false when the peer's queue is past its high-water mark: wait for `drain`.
   * @throws InvalidArgumentError for a malformed message; StateError after close().
   */
  send(message: OutgoingMessage, options: SendOptions = {}): boolean {
    checkMessage(message)
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options must be an object')
    if (options.callback !== undefined && typeof options.callback !== 'function') throw new InvalidArgumentError('options.callback must be a function')
    if (this.state === 'closing' || this.state === 'closed') throw new StateError('ERR_CLOSED', 'the platform is closed')
    if (this.isLocal(message.destination)) {
      this.deliver({ sender: LOCAL, protocol: message.protocol, topic: message.topic, scope: 'self', payload: message.payload })
      const cb = options.callback
      if (cb) queueMicrotask(() => cb(null))
      return true
    }
    return this.router.send(message, options)
  }

  /** signIds of the peers we have an open secure session with. */
  connectedPeers(): string[] {
    return this.router.connectedPeers()
  }

  /** Closes the secure session with `signId`, if one is open (messages still waiting reconnect it). */
  disconnect(signId: string): Promise<void> {
    return this.router.disconnect(signId)
  }

  /**
   * Connection counters: open sessions, handshake packets refused by reason, and the connection
   * layer's budgets at work (peers held, what was refused, closed or evicted and why: README,
   * "Resource budget").
   */
  connectionStats(): { connectedPeers: string[]; handshakeDrops: Readonly<Record<string, number>> } & ConnectionStats {
    return { connectedPeers: this.router.connectedPeers(), handshakeDrops: this.router.handshakeDrops, ...this.router.stats() }
  }

  /**
   * Hands a received message to `message` listeners and to the API objects of its protocol, each
   * isolated: one that throws is reported (`handlerError` event, else the logger, else a process
   * warning) and the others still run.
   */
  deliver(message: Message): void {
    if (this.listenerCount('message') !== 0) {
      const listeners = this.rawListeners('message')
      for (let i = 0; i < listeners.length; i++) {
        try {
          ;(listeners[i] as (m: Message) => void).call(this, message)
        } catch (err) {
          this.reportError(err, message.scope + '.' + message.topic)
        }
      }
    }
    const apis = this.apis.get(message.protocol)
    if (apis !== undefined) for (let i = 0; i < apis.length; i++) (apis[i] as APIEndpoint).receive(message)
  }

  /** @internal An API object takes the fast path; returns its detacher. */
  attachAPI(api: APIEndpoint): () => void {
    this.apis.set(api.protocol, [...(this.apis.get(api.protocol) ?? []), api])
    this.updateSolo()
    return () => {
      api.solo = false
      const rest = (this.apis.get(api.protocol) ?? []).filter((a) => a !== api)
      if (rest.length) this.apis.set(api.protocol, rest)
      else this.apis.delete(api.protocol)
      this.updateSolo()
    }
  }

  /** Tells each API whether it may deliver local sends by itself (see APIEndpoint.solo). */
  private updateSolo(rawListenerComing = false): void {
    const open = this.state === 'starting' || this.state === 'ready'
    const noRaw = !rawListenerComing && this.listenerCount('message') === 0
    for (const list of this.apis.values()) for (const api of list) api.solo = open && noRaw && list.length === 1
  }

  /**
   * @internal Local send from an attached API object: same semantics as send() to 'local', with
   * no message object unless a `message` listener wants one.
   */
  sendLocal(api: APIEndpoint, topic: string, payload: unknown, options?: SendOptions): boolean {
    if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
      throw new InvalidArgumentError(`topic must be a non-empty string of at most ${MAX_TOPIC_LENGTH} characters`)
    }
    if (this.state === 'closing' || this.state === 'closed') throw new StateError('ERR_CLOSED', 'the platform is closed')
    if (this.listenerCount('message') !== 0) {
      this.deliver({ sender: LOCAL, protocol: api.protocol, topic, scope: 'self', payload })
    } else {
      const apis = this.apis.get(api.protocol)
      if (apis !== undefined) for (let i = 0; i < apis.length; i++) (apis[i] as APIEndpoint).dispatchLocal(topic, payload)
    }
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options must be an object')
      const cb = options.callback
      if (cb !== undefined) {
        if (typeof cb !== 'function') throw new InvalidArgumentError('options.callback must be a function')
        queueMicrotask(() => cb(null))
      }
    }
    return true
  }

  /** Reports a handler's failure without stopping anything. */
  reportError(err: unknown, topic: string): void {
    const error = err instanceof MMError ? err : new HandlerError(topic, err)
    if (this.listenerCount('handlerError') > 0) {
      try {
        this.emit('handlerError', error)
        return
      } catch (inner) {
        this.logger.error({ err: inner }, 'a handlerError listener threw')
      }
    }
    if (error instanceof DecodeError) {
      // A remote payload that does not decode is hostile or broken input, not the user's bug:
      // counted and logged, never a process warning a stranger could flood.
      this.undecodable++
      this.logger.warn({ err: error, topic }, 'dropped a message whose payload does not decode')
      return
    }
    this.logger.error({ err: error, topic }, 'a message handler failed')
    if (this.logger === silentLogger) process.emitWarning(error)
  }

  /** Remote messages dropped because their payload did not decode (counted, see reportError). */
  undecodable = 0

  private async loadCircle(name: string, circle: CircleLike): Promise<void> {
    if (!(circle instanceof Circle)) return
    const stored = await this.storage.get(CIRCLE_KEY_PREFIX + name)
    if (stored === undefined) return
    try {
      circle.update(JSON.parse(stored) as string[])
    } catch (err) {
      this.logger.warn({ err, circle: name }, 'ignoring a stored circle that does not parse')
    }
  }

  private updateCircle(name: string, circle: CircleLike, payload: unknown): void {
    if (typeof circle.update !== 'function') {
      this.logger.warn({ circle: name }, `the ${name} circle given in the options cannot be updated by message`)
      return
    }
    circle.update(payload as string[]) // throws InvalidArgumentError: reported as a handler error
    if (circle instanceof Circle) {
      this.storage.put(CIRCLE_KEY_PREFIX + name, JSON.stringify(circle.getMembers())).catch((err: unknown) => {
        this.logger.error({ err, circle: name }, 'could not persist the circle')
      })
    }
  }

  /** Releases storage, timers, sockets and listeners. Idempotent: repeat calls share one promise. */
  close(): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose(): Promise<void> {
    const wasFailed = this.state === 'failed'
    this.state = 'closing'
    this.updateSolo()
    this.directory.close?.()
    await this.starting.catch(() => {})
    await this.router.close().catch((err: unknown) => this.logger.warn({ err }, 'transport close failed'))
    this.messaging.detach()
    this.torrenting.detach()
    if (!wasFailed) await this.storage.close().catch((err: unknown) => this.logger.warn({ err }, 'storage close failed'))
    this.state = 'closed'
    this.emit('close')
    this.removeAllListeners()
  }
}

function toCircle(name: string, value: CircleLike | string[] | undefined): CircleLike {
  if (value === undefined) return new Circle(name)
  if (Array.isArray(value)) return new Circle(name, value)
  if (value && typeof value.inScope === 'function') return value
  throw new InvalidArgumentError(`the ${name} option must be an array of signIds or an object with inScope(signId)`)
}

function checkMessage(message: OutgoingMessage): void {
  if (!message || typeof message !== 'object') throw new InvalidArgumentError('a message must be an object')
  const { destination, topic, protocol } = message
  if (typeof destination !== 'string' || destination.length === 0) throw new InvalidArgumentError("destination must be 'local' or a signId")
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    throw new InvalidArgumentError(`topic must be a non-empty string of at most ${MAX_TOPIC_LENGTH} characters`)
  }
  if (typeof protocol !== 'string' || protocol.length === 0 || protocol.length > MAX_PROTOCOL_LENGTH) {
    throw new InvalidArgumentError(`protocol must be a non-empty string of at most ${MAX_PROTOCOL_LENGTH} characters`)
  }
}
