/**
 * A directory on the BitTorrent Mainline DHT (BEP 5) with BEP 44 mutable items in the Pkarr
 * format (pkarr-record.ts), as a service over the platform's public messaging, plus the node's
 * identity to sign the item (BEP 44 items are signed by the key they are stored under, which is
 * our signId's Ed25519 key).
 *
 * - Publishes our nodeInfo on every `self.transports.myNodeInfo` that changed it (`seq` rises with
 *   its timestamp) and again every `republishMs` (before DHT nodes drop it, ~2 h), retrying
 *   failed puts.
 * - Resolves a signId on `self.transports.requestNodeInfo`: fetches the item, checks BEP 44's
 *   signature (bittorrent-dht's `verify`), decodes the DNS packet, checks the nodeInfo inside
 *   (NodeInfoGate) and feeds it as `transports.nodeInfo`.
 * - The public bootstrap nodes are used only when no `bootstrap` is given: tests and private
 *   swarms pass their own.
 */
import { EventEmitter } from 'node:events'
import { createHash } from 'node:crypto'
// bittorrent-dht is ESM only: loaded with import() so that the CommonJS build can use it too.
import type DHT from 'bittorrent-dht'
import { verify } from '../../crypto/sodium.js'
import { parseId } from '../../identity/ids.js'
import { nodeInfoSigningBytes, type NodeInfo } from '../../platform/node-info.js'
import { silentLogger, type Logger } from '../../logger.js'
import { NodeInfoGate, type NodeInfoGateOptions } from '../shared/remote-node-info.js'
import { checkPlatform, Subscriptions, type ServicePlatform } from '../shared/platform-port.js'
import { bep44SigningBytes, decodeRecord, encodeRecord, MAX_VALUE_BYTES } from './pkarr-record.js'

/** The public Mainline bootstrap routers, used only when the service is turned on without `bootstrap`. */
export const PUBLIC_BOOTSTRAP = ['router.bittorrent.com:6881', 'router.utorrent.com:6881', 'dht.transmissionbt.com:6881']
export const REPUBLISH_MS = 60 * 60_000
export const RETRY_MS = 15_000
export const MAX_RESOLVED = 1024
/** Most resolves in flight. */
export const MAX_PENDING_RESOLVES = 64

export interface MainlineOptions {
  platform: unknown
  /** `host:port` DHT nodes to start from; default: PUBLIC_BOOTSTRAP. */
  bootstrap?: string[]
  /** UDP port and address for our DHT node (default: a free port, all interfaces). */
  port?: number
  host?: string
  republishMs?: number
  retryMs?: number
  logger?: Logger
  gate?: NodeInfoGateOptions
}

export interface MainlineStats {
  published: number
  publishFailures: number
  resolved: number
  /** Items that verify but do not hold a usable record. */
  hostile: number
  dropped: NodeInfoGate['dropped']
}

/** `new Mainline({ platform })`. Emits `published` (seq) and `peer` (nodeInfo). */
export class Mainline extends EventEmitter {
  readonly stats: MainlineStats
  /** Our DHT node (a bittorrent-dht instance), listening. */
  private readonly started: Promise<DHT>
  private readonly platform: ServicePlatform
  private readonly logger: Logger
  private readonly gate: NodeInfoGate
  private readonly subs: Subscriptions
  private readonly resolved = new Map<string, NodeInfo>()
  private readonly resolving = new Map<string, Promise<NodeInfo | undefined>>()
  private readonly republishMs: number
  private readonly retryMs: number
  private mine: NodeInfo | undefined
  private publishedSeq = 0
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor(options: MainlineOptions) {
    super()
    this.platform = checkPlatform(options?.platform, 'Mainline')
    this.logger = options.logger ?? this.platform.logger ?? silentLogger
    this.gate = new NodeInfoGate(options.gate)
    this.stats = { published: 0, publishFailures: 0, resolved: 0, hostile: 0, dropped: this.gate.dropped }
    this.republishMs = options.republishMs ?? REPUBLISH_MS
    this.retryMs = options.retryMs ?? RETRY_MS
    this.started = import('bittorrent-dht').then(
      ({ default: DHTClass }) =>
        new Promise<DHT>((resolve) => {
          const dht = new DHTClass({ bootstrap: options.bootstrap ?? PUBLIC_BOOTSTRAP, verify: (sig, msg, pk) => verify(sig, msg, pk) })
          dht.on('error', (err: Error) => this.logger.warn({ err }, 'mainline: dht error'))
          dht.on('warning', (err: Error) => this.logger.debug({ err }, 'mainline: dht warning'))
          dht.listen(options.port ?? 0, options.host as string, () => resolve(dht))
        })
    )
    this.subs = new Subscriptions(this.platform.messaging)
    this.subs.on('self.transports.myNodeInfo', (_t, sender, payload) => {
      if (sender === 'local') this.onMyNodeInfo(payload as NodeInfo)
    })
    this.subs.on('self.transports.requestNodeInfo', (_t, sender, signId) => {
      if (sender === 'local' && typeof signId === 'string') void this.answer(signId)
    })
    this.subs.on('self.directory.get', (_t, sender, boxId) => {
      if (sender !== 'local') return
      for (const n of this.resolved.values()) {
        if (n.boxId === boxId) this.platform.messaging.send('directory.getReply', 'local', { key: boxId, value: n.signId })
      }
    })
    this.platform.messaging.send('transports.requestMyNodeInfo', 'local', null)
  }

  /** Nodes resolved through the DHT. */
  peers(): NodeInfo[] {
    return [...this.resolved.values()]
  }

  /** The UDP address of our DHT node, once listening. */
  async address(): Promise<{ address: string; port: number }> {
    return (await this.started).address()
  }

  private onMyNodeInfo(nodeInfo: NodeInfo): void {
    if (this.closed || !nodeInfo || typeof nodeInfo.timestamp !== 'number' || typeof nodeInfo.signature !== 'string') return
    this.mine = nodeInfo
    if (this.seqOf(nodeInfo) > this.publishedSeq) void this.publish()
  }

  private seqOf(nodeInfo: NodeInfo): number {
    return Math.floor((nodeInfo.timestamp as number) * 1000)
  }

  /** Puts our record now; on failure tries again after `retryMs`, else after `republishMs`. */
  async publish(): Promise<boolean> {
    if (this.closed || !this.mine) return false
    const dht = await this.started
    if (this.closed) return false
    const signKey = parseId(this.mine.signId) as Buffer
    const nodeInfo = this.fitting(this.mine, signKey)
    const v = encodeRecord(nodeInfo, signKey)
    const seq = this.seqOf(nodeInfo)
    const sig = Buffer.from(this.platform.identity.sign(bep44SigningBytes(seq, v)))
    const ok = await new Promise<boolean>((resolve) => {
      try {
        dht.put({ k: signKey, v, seq, sig }, (err, _hash, n) => resolve(!err && n > 0))
      } catch (err) {
        this.logger.warn({ err }, 'mainline: put refused')
        resolve(false)
      }
    })
    if (this.closed) return ok
    if (ok) {
      this.publishedSeq = Math.max(this.publishedSeq, seq)
      this.stats.published++
      this.emit('published', seq)
    } else this.stats.publishFailures++
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.publish(), ok ? this.republishMs : this.retryMs)
    this.timer.unref()
    return ok
  }

  /**
   * Our nodeInfo within BEP 44's 1000 bytes: connectionInfo entries are dropped from the end until
   * it fits, and what is left is signed again with the same timestamp.
   */
  private fitting(nodeInfo: NodeInfo, signKey: Buffer): NodeInfo {
    let n = nodeInfo
    while (encodeRecord(n, signKey).length > MAX_VALUE_BYTES && n.connectionInfo.length > 0) {
      const unsigned = { boxId: n.boxId, signId: n.signId, connectionInfo: n.connectionInfo.slice(0, -1), timestamp: n.timestamp as number }
      n = { ...unsigned, signature: Buffer.from(this.platform.identity.sign(nodeInfoSigningBytes(unsigned))).toString('base64') }
    }
    return n
  }

  /**
   * Fetches and checks `signId`'s record. Resolves undefined when there is none, or it is refused
   * (counted in `stats`).
   */
  resolve(signId: string): Promise<NodeInfo | undefined> {
    const key = parseId(signId)
    if (!key || this.closed) return Promise.resolve(undefined)
    let running = this.resolving.get(signId)
    if (running) return running
    if (this.resolving.size >= MAX_PENDING_RESOLVES) return Promise.resolve(undefined)
    running = this.fetch(key).finally(() => this.resolving.delete(signId))
    this.resolving.set(signId, running)
    return running
  }

  private async fetch(key: Buffer): Promise<NodeInfo | undefined> {
    const dht = await this.started
    if (this.closed) return undefined
    const target = createHash('sha1').update(key).digest()
    const item = await new Promise<DHT.GetResult | null>((resolve) => {
      try {
        dht.get(target, { cache: false }, (err, res) => resolve(err ? null : res))
      } catch {
        resolve(null)
      }
    })
    if (!item || !item.v || this.closed) return undefined
    const decoded = decodeRecord(item.v, key)
    if ('reason' in decoded) {
      this.stats.hostile++
      this.logger.debug({ reason: decoded.reason }, 'mainline: unusable record')
      return undefined
    }
    const nodeInfo = this.gate.accept(decoded.candidate)
    if (!nodeInfo) return undefined
    this.stats.resolved++
    this.resolved.delete(nodeInfo.signId)
    this.resolved.set(nodeInfo.signId, nodeInfo)
    while (this.resolved.size > MAX_RESOLVED) this.resolved.delete(this.resolved.keys().next().value as string)
    this.emit('peer', nodeInfo)
    return nodeInfo
  }

  private async answer(signId: string): Promise<void> {
    const nodeInfo = await this.resolve(signId)
    if (nodeInfo && !this.closed) this.platform.messaging.send('transports.nodeInfo', 'local', nodeInfo)
  }

  /** Stops publishing and resolving; closes the DHT node. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    this.subs.close()
    if (this.timer) clearTimeout(this.timer)
    return this.started.then((dht) => new Promise<void>((resolve) => dht.destroy(() => resolve())))
  }
}
