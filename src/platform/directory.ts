/**
 * The directory, local half: maps a signId to the nodeInfo that says how to reach it.
 *
 * It speaks only the platform's own local messages, so discovery services plug in by messaging:
 * - publishes `self.transports.myNodeInfo` when ready, every `publishIntervalMs` (5 minutes), and
 *   on a local `transports.requestMyNodeInfo`;
 * - caches every local `transports.nodeInfo` (checked, bounded, expiring after `ttlMs`);
 *   freshness rules (see {@link Directory.accept}): a signed record is refused when dated more
 *   than {@link NODE_INFO_MAX_FUTURE_MS} ahead or older than {@link NODE_INFO_MAX_AGE_MS}, or
 *   older than the one cached; an unsigned record never replaces a signed one and is taken only
 *   from the local node (sender `'local'`). Refusals are counted by reason ({@link Directory.stats});
 * - on a cache miss, `getNodeInfo()` sends `self.transports.requestNodeInfo` and waits, at most
 *   `lookupTimeoutMs`, for a matching `transports.nodeInfo`;
 * - `get(key)` does the same with `self.directory.get` / `directory.getReply` (boxId -> signId).
 */
import { LookupError, MMError, StateError, InvalidArgumentError } from '../errors.js'
import type { IdentityLike } from '../identity/identity.js'
import { isId } from '../identity/ids.js'
import type { Logger } from '../logger.js'
import type { API } from './api.js'
import { checkNodeInfo, nodeInfoSigningBytes, type ConnectionInfoEntry, type NodeInfo } from './node-info.js'
import { LOCAL } from './message.js'

export const PUBLISH_INTERVAL_MS = 5 * 60_000
export const NODE_INFO_TTL_MS = 30 * 60_000
export const LOOKUP_TIMEOUT_MS = 10_000
export const MAX_CACHED_NODE_INFO = 10_000
export const MAX_PENDING_LOOKUPS = 1_000
/** A signed nodeInfo dated more than this ahead of our clock is refused (clock skew allowance). */
export const NODE_INFO_MAX_FUTURE_MS = 5 * 60_000
/** A signed nodeInfo older than this is refused, and a cached one expires at this age. */
export const NODE_INFO_MAX_AGE_MS = 24 * 60 * 60_000
/**
 * Our own nodeInfo is signed again with a fresh timestamp after this long, even unchanged, so it
 * never ages out here (NODE_INFO_MAX_AGE_MS) nor in the services, which refuse records from the
 * network older than 2 h (services/shared/remote-node-info.ts).
 */
export const NODE_INFO_RESIGN_MS = 30 * 60_000

/** Why a nodeInfo was refused; counted in {@link Directory.stats}. */
export type NodeInfoRefusal =
  | 'invalid'
  | 'remote-sender'
  | 'unsigned-remote'
  | 'unsigned-over-signed'
  | 'future-dated'
  | 'too-old'
  | 'older-than-cached'

/**
 * What the platform needs of a directory; pass your own as the `directory` option. The platform
 * calls every member below that your directory has; without `setConnectionInfo` it never learns
 * where this node listens, so it cannot publish us (the platform logs a warning once).
 */
export interface DirectoryLike {
  identity: IdentityLike
  getNodeInfo(signId: string): Promise<NodeInfo>
  /** Our own nodeInfo (the default directory has it). */
  getMyNodeInfo?(): NodeInfo
  /** Where this node listens, once the transports are up (and again if it changes). */
  setConnectionInfo?(connectionInfo: ConnectionInfoEntry[]): void
  /** Dialling `signId` from its nodeInfo failed: the entry may be out of date. */
  markStale?(signId: string): void
  start?(): void
  close?(): void
}

export interface DirectoryOptions {
  identity: IdentityLike
  messaging: API
  logger: Logger
  connectionInfo?: ConnectionInfoEntry[]
  publishIntervalMs?: number
  ttlMs?: number
  lookupTimeoutMs?: number
  now?: () => number
  /**
   * Act on `transports.*` / `directory.*` messages from our devices too (the platform's
   * `controlFromDevices` option). Default false: only the local node (sender `'local'`).
   * Unsigned nodeInfo is taken from the local node only, whatever this says.
   */
  controlFromDevices?: boolean
}

interface Pending<T> {
  promise: Promise<T>
  resolve(value: T): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

export class Directory implements DirectoryLike {
  readonly identity: IdentityLike
  /** Our connectionInfo, published in myNodeInfo (the seed README reads this field). */
  _connectionInfo: ConnectionInfoEntry[]
  private readonly messaging: API
  private readonly logger: Logger
  private readonly publishIntervalMs: number
  private readonly ttlMs: number
  private readonly lookupTimeoutMs: number
  private readonly now: () => number
  private readonly fixedConnectionInfo: boolean
  private readonly cache = new Map<string, { nodeInfo: NodeInfo; expiresAt: number; stale: boolean }>()
  private readonly pendingNodeInfo = new Map<string, Pending<NodeInfo>>()
  private readonly pendingValues = new Map<string, Pending<string>>()
  private signed: { key: string; timestamp: number; signature: string } | undefined
  private readonly controlFromDevices: boolean
  private readonly refused: Record<NodeInfoRefusal, number> = {
    invalid: 0,
    'remote-sender': 0,
    'unsigned-remote': 0,
    'unsigned-over-signed': 0,
    'future-dated': 0,
    'too-old': 0,
    'older-than-cached': 0
  }
  /** Control messages from a remote sender that we did not act on, by topic. */
  private readonly remoteControlDrops: Record<string, number> = {}
  private publishTimer: NodeJS.Timeout | undefined
  private started = false
  private closed = false

  private readonly onNodeInfo = (_topic: string, sender: string, payload: unknown): void => {
    this.accept(payload, sender)
  }
  private readonly onRequestMine = (_topic: string, sender: string): void => {
    if (this.fromControl('transports.requestMyNodeInfo', sender)) this.publish()
  }
  private readonly onGetReply = (_topic: string, sender: string, payload: unknown): void => {
    if (this.fromControl('directory.getReply', sender)) this.acceptValue(payload)
  }

  constructor(options: DirectoryOptions) {
    this.identity = options.identity
    this.messaging = options.messaging
    this.logger = options.logger
    this.fixedConnectionInfo = options.connectionInfo !== undefined
    this._connectionInfo = options.connectionInfo ?? []
    this.publishIntervalMs = options.publishIntervalMs ?? PUBLISH_INTERVAL_MS
    this.ttlMs = options.ttlMs ?? NODE_INFO_TTL_MS
    this.lookupTimeoutMs = options.lookupTimeoutMs ?? LOOKUP_TIMEOUT_MS
    this.now = options.now ?? Date.now
    this.controlFromDevices = options.controlFromDevices ?? false
    // Listen at once: nodeInfo from services may arrive before the identity is ready.
    this.messaging.on('self.transports.nodeInfo', this.onNodeInfo)
    this.messaging.on('self.transports.requestMyNodeInfo', this.onRequestMine)
    this.messaging.on('self.directory.getReply', this.onGetReply)
  }

  /** Called by the platform once ready: publish now and then every interval. */
  start(): void {
    if (this.started || this.closed) return
    this.started = true
    this.publish()
    this.publishTimer = setInterval(() => this.publish(), this.publishIntervalMs)
    this.publishTimer.unref()
  }

  /** Our own nodeInfo, signed by our signId (see node-info.ts). */
  getMyNodeInfo(): NodeInfo {
    const unsigned = { boxId: this.identity.getBoxId(), signId: this.identity.getSignId(), connectionInfo: this._connectionInfo.map((e) => ({ ...e })) }
    // Re-signed only when it changes; the timestamp says when, so a newer one wins.
    const key = JSON.stringify(unsigned)
    if (!this.signed || this.signed.key !== key || this.now() - this.signed.timestamp >= NODE_INFO_RESIGN_MS) {
      const timestamp = Math.max(this.now(), (this.signed?.timestamp ?? 0) + 1)
      const signature = this.identity.sign(nodeInfoSigningBytes({ ...unsigned, timestamp })).toString('base64')
      this.signed = { key, timestamp, signature }
    }
    return { ...unsigned, timestamp: this.signed.timestamp, signature: this.signed.signature }
  }

  /**
   * Sets the connectionInfo that transports listen on and republishes, unless the
   * `connectionInfo` option fixed it.
   */
  setConnectionInfo(connectionInfo: ConnectionInfoEntry[]): void {
    if (this.fixedConnectionInfo) return
    this._connectionInfo = connectionInfo
    if (this.started) this.publish()
  }

  /** Publishes `self.transports.myNodeInfo` on the local bus. */
  publish(): void {
    if (!this.started || this.closed) return
    this.messaging.send('transports.myNodeInfo', LOCAL, this.getMyNodeInfo())
  }

  /** The cached nodeInfo of `signId`, if fresh. */
  getCachedNodeInfo(signId: string): NodeInfo | undefined {
    const hit = this.cache.get(signId)
    if (!hit) return undefined
    if (hit.expiresAt <= this.now()) {
      this.cache.delete(signId)
      return undefined
    }
    return hit.nodeInfo
  }

  /**
   * Adds or refreshes a nodeInfo from `sender` (default: the local node); returns false when it
   * is refused, counted by reason in {@link stats}:
   * - `invalid`: checkNodeInfo refuses it (malformed, ids that do not match, bad signature);
   * - `remote-sender`: from a remote node while `controlFromDevices` is off;
   * - `unsigned-remote`: unsigned and not from the local node;
   * - `unsigned-over-signed`: unsigned while a signed one is cached (a signed record is only
   *   replaced by a newer signed record);
   * - `future-dated`: signed with a timestamp more than {@link NODE_INFO_MAX_FUTURE_MS} ahead;
   * - `too-old`: signed more than {@link NODE_INFO_MAX_AGE_MS} ago;
   * - `older-than-cached`: signed before the signed one cached.
   * A signed record expires from the cache at the earlier of `ttlMs` from now and its age bound,
   * so replaying an old record cannot keep it alive.
   */
  accept(payload: unknown, sender: string = LOCAL): boolean {
    if (!this.fromControl('transports.nodeInfo', sender)) return this.refuse('remote-sender', undefined)
    const checked = checkNodeInfo(payload)
    if ('reason' in checked) {
      if (sender === LOCAL) this.logger.warn({ reason: checked.reason }, 'directory: refused a local nodeInfo')
      return this.refuse('invalid', undefined, checked.reason)
    }
    const { nodeInfo } = checked
    const now = this.now()
    const cached = this.cache.get(nodeInfo.signId)?.nodeInfo
    let expiresAt = now + this.ttlMs
    if (nodeInfo.timestamp === undefined) {
      if (sender !== LOCAL) return this.refuse('unsigned-remote', nodeInfo.signId)
      if (cached?.timestamp !== undefined) return this.refuse('unsigned-over-signed', nodeInfo.signId)
    } else {
      if (nodeInfo.timestamp > now + NODE_INFO_MAX_FUTURE_MS) return this.refuse('future-dated', nodeInfo.signId)
      if (nodeInfo.timestamp < now - NODE_INFO_MAX_AGE_MS) return this.refuse('too-old', nodeInfo.signId)
      if (cached?.timestamp !== undefined && nodeInfo.timestamp < cached.timestamp) return this.refuse('older-than-cached', nodeInfo.signId)
      expiresAt = Math.min(expiresAt, nodeInfo.timestamp + NODE_INFO_MAX_AGE_MS)
    }
    this.cache.delete(nodeInfo.signId) // re-insert: the Map's order is our eviction order
    this.cache.set(nodeInfo.signId, { nodeInfo, expiresAt, stale: false })
    while (this.cache.size > MAX_CACHED_NODE_INFO) this.cache.delete(this.cache.keys().next().value as string)
    this.pendingNodeInfo.get(nodeInfo.signId)?.resolve(nodeInfo)
    return true
  }

  /** Refusals so far: nodeInfo by reason, and remote control messages ignored by topic. */
  stats(): { nodeInfoRefused: Record<NodeInfoRefusal, number>; remoteControlDrops: Record<string, number> } {
    return { nodeInfoRefused: { ...this.refused }, remoteControlDrops: { ...this.remoteControlDrops } }
  }

  private refuse(reason: NodeInfoRefusal, signId: string | undefined, detail?: string): false {
    this.refused[reason]++
    // Debug, not warn: a remote peer must not be able to flood our logs.
    this.logger.debug({ reason, signId, detail }, 'directory: refused a nodeInfo')
    return false
  }

  /**
   * True when a control message from `sender` may be acted on: the local node, or (with
   * `controlFromDevices`) any sender the platform let through. Counts the others by topic.
   */
  private fromControl(topic: string, sender: string): boolean {
    if (sender === LOCAL || this.controlFromDevices) return true
    this.remoteControlDrops[topic] = (this.remoteControlDrops[topic] ?? 0) + 1
    return false
  }

  /** Forgets a cached nodeInfo. */
  forget(signId: string): void {
    this.cache.delete(signId)
  }

  /**
   * Marks a cached nodeInfo as doubtful (a dial to it failed). It is kept, because the failure
   * may be the network's or an attacker's, but the next lookup also asks the discovery services
   * for a fresher one.
   */
  markStale(signId: string): void {
    const hit = this.cache.get(signId)
    if (hit) hit.stale = true
  }

  /**
   * The nodeInfo of `signId`: from the cache, else asked of the discovery services.
   * @throws LookupError (ERR_TIMEOUT) when no service answers within `lookupTimeoutMs`.
   */
  getNodeInfo(signId: string): Promise<NodeInfo> {
    if (!isId(signId)) return Promise.reject(new InvalidArgumentError(`not a signId: ${String(signId).slice(0, 60)}`))
    const cached = this.cache.get(signId)
    const hit = this.getCachedNodeInfo(signId)
    if (hit) {
      if (cached?.stale && !this.closed && !this.pendingNodeInfo.has(signId)) {
        // Refresh in the background; a late or missing answer costs nothing.
        this.wait(this.pendingNodeInfo, signId, `no fresh nodeInfo for ${signId}`, () => this.messaging.send('transports.requestNodeInfo', LOCAL, signId)).catch(() => {})
      }
      return Promise.resolve(hit)
    }
    return this.wait(this.pendingNodeInfo, signId, `no nodeInfo for ${signId} within ${this.lookupTimeoutMs} ms`, () =>
      this.messaging.send('transports.requestNodeInfo', LOCAL, signId)
    )
  }

  /** Looks up a key with `self.directory.get`; resolves with the value of a `directory.getReply`. */
  get(key: string): Promise<string> {
    if (typeof key !== 'string' || key.length === 0) return Promise.reject(new InvalidArgumentError('key must be a non-empty string'))
    return this.wait(this.pendingValues, key, `no directory value for ${key} within ${this.lookupTimeoutMs} ms`, () =>
      this.messaging.send('directory.get', LOCAL, key)
    )
  }

  private acceptValue(payload: unknown): void {
    const p = payload as { key?: unknown; value?: unknown } | null
    if (!p || typeof p.key !== 'string' || typeof p.value !== 'string') {
      this.logger.warn({ payload }, 'directory: refused a getReply without string key and value')
      return
    }
    this.pendingValues.get(p.key)?.resolve(p.value)
  }

  private wait<T>(table: Map<string, Pending<T>>, key: string, timeoutText: string, ask: () => void): Promise<T> {
    if (this.closed) return Promise.reject(new StateError('ERR_CLOSED', 'the directory is closed'))
    const existing = table.get(key)
    if (existing) return existing.promise
    if (table.size >= MAX_PENDING_LOOKUPS) {
      return Promise.reject(new MMError('ERR_LIMIT_REACHED', `too many lookups in progress (at most ${MAX_PENDING_LOOKUPS})`))
    }
    let resolve!: (value: T) => void
    let reject!: (err: Error) => void
    const promise = new Promise<T>((res, rej) => {
      resolve = res
      reject = rej
    })
    const done = (): void => {
      clearTimeout(pending.timer)
      if (table.get(key) === pending) table.delete(key)
    }
    const pending: Pending<T> = {
      promise,
      resolve: (value) => {
        done()
        resolve(value)
      },
      reject: (err) => {
        done()
        reject(err)
      },
      timer: setTimeout(() => pending.reject(new LookupError('ERR_TIMEOUT', timeoutText)), this.lookupTimeoutMs)
    }
    pending.timer.unref()
    table.set(key, pending)
    ask()
    return promise
  }

  /** Stops publishing, fails pending lookups, stops listening. Idempotent. */
  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.publishTimer) clearInterval(this.publishTimer)
    this.messaging.off('self.transports.nodeInfo', this.onNodeInfo)
    this.messaging.off('self.transports.requestMyNodeInfo', this.onRequestMine)
    this.messaging.off('self.directory.getReply', this.onGetReply)
    for (const table of [this.pendingNodeInfo, this.pendingValues] as Array<Map<string, Pending<unknown>>>) {
      for (const pending of [...table.values()]) pending.reject(new StateError('ERR_CLOSED', 'the platform closed before the lookup finished'))
    }
  }
}
