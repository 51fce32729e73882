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
import { LevelStore } from '../storage/level-store.js'
import { PlatformStorage } from '../storage/platform-storage.js'
import { Identity, type IdentityLike } from '../identity/identity.js'
import { API, binaryCodec } from './api.js'
import { Circle, toCircle, type CircleLike } from './circle.js'
import { loadCircle, saveCircle } from './circle-store.js'
import { Directory, type DirectoryLike } from './directory.js'
import { ConnectionManager, type ConnectionStats } from '../connections/manager.js'
import { StablePorts, type ListenOptions } from './stable-ports.js'
import type { APIEndpoint, MessageLayer } from './layer.js'
import { isControlTopic, type PlatformStats } from './control.js'
import type { PlatformOptions, PlatformOutbox, RemoteRouter } from './options.js'
import { asDeliveryError, checkMessage, checkOptions, checkTopic } from './send-checks.js'
import {
  LOCAL,
  type Message,
  type OutgoingMessage,
  type Scope,
  type SendOptions
} from './message.js'

export type { PlatformOptions, PlatformOutbox, RemoteRouter } from './options.js'
export { isControlTopic, type PlatformStats } from './control.js'

type State = 'starting' | 'ready' | 'failed' | 'closing' | 'closed'

/**
 * One node. `D` is the type of `platform.directory`: the built-in {@link Directory} (with
 * `getMyNodeInfo()`, `get()`, ...) unless a `directory` option of another type is given.
 */
export class Platform<D extends DirectoryLike = Directory> extends EventEmitter implements MessageLayer {
  /** JSON messages, protocol `ms`. */
  readonly messaging: API
  /** BitTorrent messages, protocol `bt`, binary payloads. */
  readonly torrenting: API
  readonly directory: D
  readonly friends: CircleLike
  readonly devices: CircleLike
  readonly logger: Logger
  /** The storage the platform uses (the given one, wrapped). */
  readonly storage: PlatformStorage
  private state: State = 'starting'
  /** Why start failed (refused sends carry it as `cause`). */
  private startError: unknown
  /** Someone asked for the start result (ready() or an `error` listener): no process warning then. */
  private startObserved = false
  private readonly starting: Promise<void>
  private closing: Promise<void> | undefined
  private readonly router: RemoteRouter
  /** Our copies of the listen options, read by the transports at start (after StablePorts fills them in). */
  private readonly listen: ListenOptions
  private readonly stablePorts: StablePorts | undefined
  /** API objects attached directly, by protocol (the fast path; see API.dispatchLocal). */
  private readonly apis = new Map<string, APIEndpoint[]>()
  private readonly controlFromDevices: boolean
  /** Remote messages on control topics dropped, by topic. */
  private readonly controlDrops: Record<string, number> = {}

  constructor(options: PlatformOptions<D> = {}) {
    super()
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options must be an object')
    this.logger = options.logger ?? silentLogger
    this.controlFromDevices = options.controlFromDevices === true
    this.storage = new PlatformStorage(
      options.storage ?? new LevelStore({ dir: options.dataDir, repair: options.repairStorage, logger: this.logger })
    )
    const identity = options.identity ?? new Identity(this.storage, { passphrase: options.passphrase, logger: this.logger })
    this.friends = toCircle('friends', options.friends)
    this.devices = toCircle('devices', options.devices)
    this.messaging = new API({ platform: this, protocol: 'ms' })
    this.torrenting = new API({ platform: this, protocol: 'bt', encode: binaryCodec.encode, decode: binaryCodec.decode })
    this.directory = (options.directory ??
      new Directory({
        identity,
        messaging: this.messaging,
        logger: this.logger,
        connectionInfo: options.connectionInfo,
        publishIntervalMs: options.publishIntervalMs,
        ttlMs: options.nodeInfoTtlMs,
        lookupTimeoutMs: options.lookupTimeoutMs,
        controlFromDevices: this.controlFromDevices
      })) as D
    this.listen = {
      tcp: options.tcp === false ? false : { ...options.tcp },
      udp: options.udp === false ? false : { ...options.udp }
    }
    this.stablePorts = options.stablePorts === false ? undefined : new StablePorts(this.storage, this.logger)
    this.router = new ConnectionManager({
      host: this,
      identity,
      getNodeInfo: (signId) => this.directory.getNodeInfo(signId),
      forgetNodeInfo: (signId) => this.directory.markStale?.(signId),
      logger: this.logger,
      tcp: this.listen.tcp,
      udp: this.listen.udp,
      storage: this.storage,
      outbox: options.outbox,
      ...options.connections
    })
    this.messaging.on('self.friends.update', (_t, sender, payload) => this.updateCircle('friends', this.friends, sender, payload))
    this.messaging.on('self.devices.update', (_t, sender, payload) => this.updateCircle('devices', this.devices, sender, payload))
    // A raw `message` listener must see local messages too: it turns the API fast path off.
    this.on('newListener', (event: string | symbol) => {
      if (event === 'message') this.updateSolo(true)
      if (event === 'error') this.startObserved = true
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
    this.startObserved = true
    return this.starting
  }

  private async start(): Promise<void> {
    try {
      await this.storage.open()
      if (typeof this.directory.identity.load === 'function') await this.directory.identity.load()
      await loadCircle(this.storage, this.logger, 'friends', this.friends)
      await loadCircle(this.storage, this.logger, 'devices', this.devices)
      if (this.state !== 'starting') return
      await this.stablePorts?.prepare(this.listen)
      const connectionInfo = await this.router.start()
      await this.stablePorts?.remember(connectionInfo)
      if (this.directory.setConnectionInfo) this.directory.setConnectionInfo(connectionInfo)
      else this.logger.warn({ connectionInfo }, 'the custom directory has no setConnectionInfo: it does not learn where this node listens')
    } catch (err) {
      if (this.state === 'closing' || this.state === 'closed') throw err
      this.state = 'failed'
      this.startError = err
      this.updateSolo()
      this.logger.error({ err }, 'platform failed to start')
      if (this.listenerCount('error') > 0) this.emit('error', err)
      else if (this.logger === silentLogger) {
        // A warning only when nobody is told otherwise: not for a caller who awaits ready()
        // (asked now, or by the end of this turn of the event loop).
        setImmediate(() => {
          if (!this.startObserved) process.emitWarning(err instanceof Error ? err : new Error(describe(err)))
        })
      }
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
   * by the peer platform (`options.callback(null)`), or fails with a DeliveryError. The payload
   * is the wire form (a string or bytes; JSON text for `ms`), for local and remote alike, and raw
   * `message` listeners see it so; API objects encode and decode for you.
   * @returns false past the peer's high-water mark or on a refusal (the callback says why): wait for `drain`, which follows every false.
   * @throws InvalidArgumentError for a malformed message or options (nothing was delivered);
   *   StateError ERR_CLOSED after close(), ERR_NOT_READY after a failed start.
   */
  send(message: OutgoingMessage, options: SendOptions = {}): boolean {
    checkMessage(message)
    checkOptions(options)
    this.checkOpen()
    if (this.isLocal(message.destination)) {
      this.deliver({ sender: LOCAL, protocol: message.protocol, topic: message.topic, scope: 'self', payload: message.payload })
      const cb = options.callback
      if (cb) queueMicrotask(() => cb(null))
      return true
    }
    const cb = options.callback
    if (cb === undefined) return this.router.send(message, options)
    // Every delivery failure reaches the caller as a DeliveryError, whatever layer raised it.
    return this.router.send(message, { ...options, callback: (err) => cb(asDeliveryError(err)) })
  }

  /** Throws unless sends are possible: ERR_CLOSED after close(), ERR_NOT_READY (cause: the start error) after a failed start. */
  private checkOpen(): void {
    if (this.state === 'starting' || this.state === 'ready') return
    if (this.state === 'failed') throw new StateError('ERR_NOT_READY', `the platform failed to start: ${describe(this.startError)}`, { cause: this.startError })
    throw new StateError('ERR_CLOSED', 'the platform is closed')
  }

  /** The persistent outbox (list, cancel, expire); fates come as `delivered` / `failed` events. */
  get outbox(): PlatformOutbox {
    if (!this.router.outbox) throw new StateError('ERR_NOT_READY', 'this router has no outbox')
    return this.router.outbox
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
   * What was refused and why, for an operator to see an attack: handshake packets by reason,
   * nodeInfo by reason, remote control messages by topic, undecodable payloads. Counters only
   * grow; each call returns a copy.
   */
  stats(): PlatformStats {
    const directoryStats = (this.directory as Partial<Directory>).stats?.()
    return {
      connectedPeers: this.router.connectedPeers(),
      handshakeDrops: this.router.handshakeDrops,
      nodeInfoRefused: directoryStats?.nodeInfoRefused ?? {},
      controlDrops: { ...this.controlDrops },
      undecodable: this.undecodable
    }
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
    if (message.sender !== LOCAL && isControlTopic(message.topic) && !this.mayControl(message.sender)) {
      this.controlDrops[message.topic] = (this.controlDrops[message.topic] ?? 0) + 1
      this.logger.debug({ sender: message.sender, topic: message.topic }, 'dropped a control message from a remote sender')
      return
    }
    if (this.listenerCount('message') !== 0) this.emitRaw(message)
    const apis = this.apis.get(message.protocol)
    if (apis !== undefined) for (let i = 0; i < apis.length; i++) (apis[i] as APIEndpoint).receive(message)
  }

  /** Calls each raw `message` listener, isolated. */
  private emitRaw(message: Message): void {
    const listeners = this.rawListeners('message')
    for (let i = 0; i < listeners.length; i++) {
      try {
        ;(listeners[i] as (m: Message) => void).call(this, message)
      } catch (err) {
        this.reportError(err, message.scope + '.' + message.topic)
      }
    }
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
    // The same checks as send(), all before anything is delivered (the API checked the payload).
    checkTopic(topic)
    if (options !== undefined) checkOptions(options)
    this.checkOpen()
    if (this.listenerCount('message') !== 0) {
      // Raw listeners see every payload in wire form, as for remote messages; the API objects
      // still get the value itself (local messages are not serialised for them).
      this.emitRaw({ sender: LOCAL, protocol: api.protocol, topic, scope: 'self', payload: api.toWire(topic, payload) })
    }
    const apis = this.apis.get(api.protocol)
    if (apis !== undefined) for (let i = 0; i < apis.length; i++) (apis[i] as APIEndpoint).dispatchLocal(topic, payload)
    const cb = options?.callback
    if (cb !== undefined) queueMicrotask(() => cb(null))
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

  /** May `sender` drive the control topics? The local node, or our devices with `controlFromDevices`. */
  private mayControl(sender: string): boolean {
    return sender === LOCAL || (this.controlFromDevices && this.devices.inScope(sender))
  }

  private updateCircle(name: string, circle: CircleLike, sender: string, payload: unknown): void {
    if (!this.mayControl(sender)) {
      // Not reached through deliver() (which drops these first); kept so the rule holds here too.
      this.controlDrops[`${name}.update`] = (this.controlDrops[`${name}.update`] ?? 0) + 1
      return
    }
    if (typeof circle.update !== 'function') {
      this.logger.warn({ circle: name }, `the ${name} circle given in the options cannot be updated by message`)
      return
    }
    circle.update(payload as string[]) // throws InvalidArgumentError: reported as a handler error
    if (circle instanceof Circle) saveCircle(this.storage, this.logger, name, circle)
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
