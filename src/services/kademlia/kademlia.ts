/**
 * A Kademlia DHT (Maymounkov and Mazieres, 2002) as a service over the platform's own messaging
 * (the seed's `mm-services-kademlia`): RPCs are realtime `ms` messages between nodes over their
 * secure sessions, so every reply is authenticated by the session; records are signed nodeInfos,
 * checked by a NodeInfoGate, so a strange node cannot poison a lookup.
 *
 * - Routing table: `k-bucket`, K = 20, ids = SHA-256 of signIds (ids.ts); a contact enters when it
 *   calls us or answers us; a full bucket pings its oldest and keeps them if they answer.
 * - RPCs: PING, STORE, FIND_NODE, FIND_VALUE (rpc.ts); lookups are iterative, ALPHA = 3 in
 *   parallel (lookup.ts).
 * - Values: our own nodeInfo under H(signId) and H('box:' + boxId) at the K closest nodes,
 *   republished every `republishMs` and whenever it changes; stored ones expire with their
 *   freshness and are bounded per peer (values.ts).
 * - Bootstrap: nodeInfos in the `bootstrap` option, contacts stored by an earlier run, and
 *   `self.transports.nodeInfoBootstrap` (mDNS discoveries); asks for them with
 *   `transports.requestBootstrapNodeInfo` while the table is empty.
 * - Platform messages: answers `self.transports.requestNodeInfo` and `self.directory.get`, watches
 *   `self.transports.myNodeInfo`, feeds `transports.nodeInfo` (contacts it is about to call and
 *   nodes it found).
 *
 * Over 400 lines: the pure parts live beside it (ids, rpc codec, lookup, values); what is left
 * here is the service's shared state (table, pending RPCs, our record) and the handlers that all
 * touch it, which read best in one place.
 */
import { EventEmitter } from 'node:events'
import KBucket from 'k-bucket'
import type { KadStore } from '../../storage/store.js'
import type { NodeInfo } from '../../platform/node-info.js'
import { silentLogger, type Logger } from '../../logger.js'
import { randomBytes } from '../../crypto/sodium.js'
import { NodeInfoGate, type NodeInfoGateOptions } from '../shared/remote-node-info.js'
import { checkPlatform, Subscriptions, type ServicePlatform } from '../shared/platform-port.js'
import { boxKeyOf, isValueFor, nodeIdOf, parseHexId } from './ids.js'
import { ALPHA, K, lookup, type LookupContact, type LookupResult } from './lookup.js'
import { parseReply, parseRequest, REPLY_TOPIC, RPC_TOPIC, type Method, type Reply, type Request } from './rpc.js'
import { ValueStore } from './values.js'

export const RPC_TIMEOUT_MS = 3_000
export const REPUBLISH_MS = 30 * 60_000
export const SWEEP_MS = 60_000
export const MAX_PENDING_RPCS = 2_000
/** Contacts saved for the next run. */
export const MAX_SAVED_CONTACTS = 64
const CONTACTS_KEY = 'kad.contacts'
/** How long close() waits for the store's writes in flight before giving up on them. */
export const CLOSE_WRITES_MS = 2_000
/** A record handed to the platform's directory is handed again after this long (its cache TTL is 30 min). */
const FEED_AGAIN_MS = 10 * 60_000
const MAX_FED = 4096

export interface KademliaOptions {
  platform: unknown
  /** A kad-fs compatible store for values and contacts (`kadfs(dir)` works). Default: memory only. */
  storage?: KadStore
  /** Signed nodeInfos of nodes to start from. */
  bootstrap?: NodeInfo[]
  k?: number
  alpha?: number
  rpcTimeoutMs?: number
  republishMs?: number
  logger?: Logger
  gate?: NodeInfoGateOptions
}

export interface KademliaStats {
  rpcsSent: number
  rpcsReceived: number
  rpcTimeouts: number
  /** Messages whose shape was wrong or whose `from` was not their sender. */
  hostile: number
  /** Records refused by the nodeInfo gate, by reason. */
  dropped: NodeInfoGate['dropped']
  /** STOREs refused by a bound. */
  storesRefused: number
}

interface Contact {
  id: Buffer
  vectorClock: number
  nodeInfo: NodeInfo
  /** RPCs in a row it did not answer. */
  fails: number
}

/**
 * A contact that misses this many RPCs in a row leaves the table. Classic Kademlia evicts only
 * when a full bucket is contested (the `ping` event); we also drop a contact that keeps failing,
 * but not at the first misses: under load a reply can be late, and evicting then empties tables
 * (at 2, 1,000 simulated nodes found 74% of lookups).
 */
export const MAX_CONTACT_FAILS = 5

interface PendingRpc {
  resolve(reply: Reply | null): void
  timer: NodeJS.Timeout
  to: NodeInfo
  method: Method
}

/**
 * `new Kademlia({ platform, storage })`. Emits `ready` after its first bootstrap, and `found`
 * (nodeInfo) when it answered a platform's request for a node.
 */
export class Kademlia extends EventEmitter {
  readonly stats: KademliaStats
  private readonly platform: ServicePlatform
  private readonly logger: Logger
  private readonly gate: NodeInfoGate
  private readonly subs: Subscriptions
  private readonly storage: KadStore | undefined
  private readonly values: ValueStore
  private readonly k: number
  private readonly alpha: number
  private readonly rpcTimeoutMs: number
  private readonly pending = new Map<string, PendingRpc>()
  private readonly lookups = new Map<string, Promise<LookupResult>>()
  private readonly bootstrapQueue: NodeInfo[]
  private readonly fed = new Map<string, number>()
  private table: KBucket<Contact> | undefined
  private mine: NodeInfo | undefined
  private selfId: Buffer | undefined
  private rpcSeq = 0
  private rpcPrefix = randomBytes(4).toString('hex')
  private republishTimer: NodeJS.Timeout
  private sweepTimer: NodeJS.Timeout
  private refreshing: Promise<void> | undefined
  private loaded: Promise<void>
  private closed = false

  constructor(options: KademliaOptions) {
    super()
    this.platform = checkPlatform(options?.platform, 'Kademlia')
    this.logger = options.logger ?? this.platform.logger ?? silentLogger
    this.gate = new NodeInfoGate(options.gate)
    this.storage = options.storage
    this.values = new ValueStore(this.storage, this.logger)
    this.k = options.k ?? K
    this.alpha = options.alpha ?? ALPHA
    this.rpcTimeoutMs = options.rpcTimeoutMs ?? RPC_TIMEOUT_MS
    this.stats = { rpcsSent: 0, rpcsReceived: 0, rpcTimeouts: 0, hostile: 0, dropped: this.gate.dropped, storesRefused: 0 }
    this.bootstrapQueue = [...(options.bootstrap ?? [])]
    this.subs = new Subscriptions(this.platform.messaging)
    for (const scope of ['public', 'friends', 'self']) {
      this.subs.on(`${scope}.${RPC_TOPIC}`, (_t, sender, payload) => this.onRequest(sender, payload))
      this.subs.on(`${scope}.${REPLY_TOPIC}`, (_t, sender, payload) => this.onReply(sender, payload))
    }
    this.subs.on('self.transports.myNodeInfo', (_t, sender, payload) => {
      if (sender === 'local') this.onMyNodeInfo(payload)
    })
    this.subs.on('self.transports.requestNodeInfo', (_t, sender, signId) => {
      if (sender === 'local' && typeof signId === 'string') void this.answerNodeInfo(signId)
    })
    this.subs.on('self.directory.get', (_t, sender, key) => {
      if (sender === 'local' && typeof key === 'string') void this.answerDirectoryGet(key)
    })
    this.subs.on('self.transports.nodeInfoBootstrap', (_t, sender, payload) => {
      if (sender === 'local') this.addBootstrap(payload)
    })
    this.loaded = this.load()
    this.republishTimer = setInterval(() => void this.publish(), options.republishMs ?? REPUBLISH_MS)
    this.republishTimer.unref()
    this.sweepTimer = setInterval(() => this.values.sweep((n) => this.gate.isFresh(n)), SWEEP_MS)
    this.sweepTimer.unref()
    this.platform.messaging.send('transports.requestMyNodeInfo', 'local', null)
  }

  /** Nodes in the routing table. */
  contacts(): NodeInfo[] {
    return this.table ? this.table.toArray().map((c) => c.nodeInfo) : []
  }

  /** Values stored here for others. */
  get storedValues(): number {
    return this.values.size
  }

  /**
   * Finds `signId`'s signed nodeInfo: from the routing table, values held here, else an iterative
   * FIND_VALUE. Resolves with the nodeInfo (undefined when not found), the hops and requests used.
   */
  async findNode(signId: string): Promise<{ nodeInfo?: NodeInfo; hops: number; queried: number }> {
    const id = nodeIdOf(signId)
    if (!id || this.closed) return { hops: 0, queried: 0 }
    await this.loaded
    if (this.mine?.signId === signId) return { nodeInfo: this.mine, hops: 0, queried: 0 }
    const near = this.table?.get(id)
    if (near) return { nodeInfo: near.nodeInfo, hops: 0, queried: 0 }
    const held = this.values.get(id.toString('hex'))
    if (held && this.gate.isFresh(held)) return { nodeInfo: held, hops: 0, queried: 0 }
    let r = await this.findValue(id)
    // Contacts that missed a reply left the table meanwhile: one more lookup starts from better ones.
    if (!r.value && !this.closed) {
      const again = await this.findValue(id)
      r = { ...again, queried: r.queried + again.queried }
    }
    return { nodeInfo: r.value, hops: r.hops, queried: r.queried }
  }

  private async answerNodeInfo(signId: string): Promise<void> {
    const r = await this.findNode(signId)
    if (r.nodeInfo && !this.closed) {
      this.platform.messaging.send('transports.nodeInfo', 'local', r.nodeInfo)
      this.emit('found', r.nodeInfo)
    }
  }

  private async answerDirectoryGet(boxId: string): Promise<void> {
    const key = boxKeyOf(boxId)
    if (!key) return
    await this.loaded
    const local = this.contacts().find((n) => n.boxId === boxId) ?? this.values.get(key.toString('hex'))
    const found = local ?? (await this.findValue(key)).value
    if (found && !this.closed) {
      this.platform.messaging.send('transports.nodeInfo', 'local', found)
      this.platform.messaging.send('directory.getReply', 'local', { key: boxId, value: found.signId })
    }
  }

  /** One FIND_VALUE lookup per key at a time. */
  private findValue(key: Buffer): Promise<LookupResult> {
    const hex = key.toString('hex')
    let running = this.lookups.get(hex)
    if (!running) {
      running = this.runLookup(key, true).finally(() => this.lookups.delete(hex))
      this.lookups.set(hex, running)
    }
    return running
  }

  private runLookup(target: Buffer, wantValue: boolean): Promise<LookupResult> {
    if (!this.table || !this.selfId) return Promise.resolve({ closest: [], hops: 0, queried: 0 })
    const method: Method = wantValue ? 'find_value' : 'find_node'
    return lookup({
      target,
      self: this.selfId,
      start: this.table.closest(target, this.k),
      wantValue,
      k: this.k,
      alpha: this.alpha,
      ask: async (c) => {
        const reply = await this.call(c.nodeInfo, method, { key: target.toString('hex') })
        if (!reply) return null
        const nodes = this.checkedNodes(reply.nodes)
        let value: NodeInfo | undefined
        if (wantValue && reply.value !== undefined) {
          value = this.gate.accept(reply.value)
          if (value && !isValueFor(target, value)) {
            this.stats.hostile++
            value = undefined
          }
        }
        return { nodes, value }
      }
    })
  }

  private checkedNodes(list: unknown[] | undefined): LookupContact[] {
    const out: LookupContact[] = []
    for (const item of list ?? []) {
      const nodeInfo = this.gate.accept(item)
      const id = nodeInfo && nodeIdOf(nodeInfo.signId)
      if (nodeInfo && id) out.push({ id, nodeInfo })
    }
    return out
  }

  /** Sends one RPC; resolves with the reply, or null on timeout or failure. */
  private call(to: NodeInfo, method: Method, args: { key?: string; value?: NodeInfo } = {}): Promise<Reply | null> {
    if (this.closed || !this.mine || this.pending.size >= MAX_PENDING_RPCS) return Promise.resolve(null)
    const id = `${this.rpcPrefix}${(this.rpcSeq++).toString(36)}`
    this.feed(to)
    return new Promise<Reply | null>((resolve) => {
      const done = (reply: Reply | null): void => {
        const p = this.pending.get(id)
        if (!p) return
        clearTimeout(p.timer)
        this.pending.delete(id)
        if (!reply) this.failed(to)
        resolve(reply)
      }
      const timer = setTimeout(() => {
        this.stats.rpcTimeouts++
        done(null)
      }, this.rpcTimeoutMs)
      timer.unref()
      this.pending.set(id, { resolve: done, timer, to, method })
      this.stats.rpcsSent++
      try {
        this.platform.messaging.send(RPC_TOPIC, to.signId, { id, q: method, from: this.mine, ...args }, {
          realtime: true,
          expireAfter: this.rpcTimeoutMs,
          callback: (err) => {
            if (err) done(null)
          }
        })
      } catch (err) {
        this.logger.debug({ err }, 'kademlia: send failed')
        done(null)
      }
    })
  }

  /**
   * The platform dials from its directory: give it a contact's signed nodeInfo before calling.
   * Each record once per FEED_AGAIN_MS (the directory verifies every one it is given).
   */
  private feed(nodeInfo: NodeInfo): void {
    const key = nodeInfo.signId + (nodeInfo.signature ?? '')
    const now = Date.now()
    const last = this.fed.get(key)
    if (last !== undefined && now - last < FEED_AGAIN_MS) return
    this.fed.delete(key)
    this.fed.set(key, now)
    if (this.fed.size > MAX_FED) this.fed.delete(this.fed.keys().next().value as string)
    this.platform.messaging.send('transports.nodeInfo', 'local', nodeInfo)
  }

  private onReply(sender: string, payload: unknown): void {
    const reply = parseReply(payload)
    const p = reply && this.pending.get(reply.id)
    if (!reply || !p || p.to.signId !== sender || p.method !== reply.r) {
      this.stats.hostile++
      return
    }
    p.resolve(reply)
    // A node that answers is alive: it enters (or refreshes) the table.
    this.addContact(p.to)
  }

  private onRequest(sender: string, payload: unknown): void {
    if (this.closed || sender === 'local') return
    this.stats.rpcsReceived++
    const req = parseRequest(payload)
    const from = req && this.gate.accept(req.from)
    if (!req || !from || from.signId !== sender) {
      if (req && !from) return // counted by the gate
      this.stats.hostile++
      return
    }
    this.addContact(from)
    // Reply over the same session; the directory has the caller's nodeInfo should it have closed.
    this.feed(from)
    const reply: Record<string, unknown> = { id: req.id, r: req.q }
    if (req.q !== 'ping') {
      const key = parseHexId(req.key)
      if (!key) {
        this.stats.hostile++
        return
      }
      if (req.q === 'store') this.onStore(key, req, sender)
      else {
        if (req.q === 'find_value') {
          const value = this.valueFor(key)
          if (value) reply.value = value
        }
        if (reply.value === undefined) reply.nodes = this.closestTo(key, sender)
      }
    }
    this.send(sender, reply)
  }

  private onStore(key: Buffer, req: Request, sender: string): void {
    const value = this.gate.accept(req.value)
    if (!value) return
    if (!isValueFor(key, value)) {
      this.stats.hostile++
      return
    }
    if (!this.values.put(key.toString('hex'), value, sender)) this.stats.storesRefused = this.values.refused
  }

  private valueFor(key: Buffer): NodeInfo | undefined {
    if (this.mine && this.selfId && (this.selfId.equals(key) || boxKeyOf(this.mine.boxId)?.equals(key))) return this.mine
    const held = this.values.get(key.toString('hex'))
    if (held && this.gate.isFresh(held)) return held
    const contact = this.table?.get(key)
    return contact && this.gate.isFresh(contact.nodeInfo) ? contact.nodeInfo : undefined
  }

  private closestTo(key: Buffer, exclude: string): NodeInfo[] {
    if (!this.table) return []
    return this.table
      .closest(key, this.k + 1)
      .filter((c) => c.nodeInfo.signId !== exclude)
      .slice(0, this.k)
      .map((c) => c.nodeInfo)
  }

  private send(to: string, payload: unknown): void {
    try {
      this.platform.messaging.send(REPLY_TOPIC, to, payload, { realtime: true, expireAfter: this.rpcTimeoutMs, callback: () => {} })
    } catch (err) {
      this.logger.debug({ err }, 'kademlia: reply failed')
    }
  }

  private addContact(nodeInfo: NodeInfo): void {
    if (!this.table || nodeInfo.signId === this.mine?.signId) return
    const id = nodeIdOf(nodeInfo.signId)
    if (!id) return
    const old = this.table.get(id)
    if (old && (old.nodeInfo.timestamp ?? 0) > (nodeInfo.timestamp ?? 0)) nodeInfo = old.nodeInfo
    this.table.add({ id, vectorClock: Date.now(), nodeInfo, fails: 0 })
  }

  /** A missed reply: a contact that misses MAX_CONTACT_FAILS in a row leaves the table. */
  private failed(to: NodeInfo): void {
    const id = nodeIdOf(to.signId)
    const c = id && this.table?.get(id)
    if (!c) return
    if (++c.fails >= MAX_CONTACT_FAILS) this.table?.remove(c.id)
  }

  private onMyNodeInfo(payload: unknown): void {
    const n = payload as NodeInfo
    if (this.closed || !n || typeof n.signId !== 'string' || typeof n.signature !== 'string') return
    const id = nodeIdOf(n.signId)
    if (!id) return
    const changed = !this.mine || this.mine.timestamp !== n.timestamp
    this.mine = n
    if (!this.table) {
      this.selfId = id
      this.table = new KBucket<Contact>({ localNodeId: id, numberOfNodesPerKBucket: this.k, numberOfNodesToPing: this.alpha })
      this.table.on('ping', (old: Contact[], candidate: Contact) => void this.contest(old, candidate))
      void this.bootstrap()
    } else if (changed) void this.publish()
  }

  /** A full bucket: ping its oldest; those that do not answer make room for the candidate. */
  private async contest(old: Contact[], candidate: Contact): Promise<void> {
    const answers = await Promise.all(old.map((c) => this.call(c.nodeInfo, 'ping')))
    let room = false
    answers.forEach((a, i) => {
      const c = old[i] as Contact
      if (a) this.table?.add({ ...c, vectorClock: Date.now(), fails: 0 })
      else {
        this.table?.remove(c.id)
        room = true
      }
    })
    if (room) this.table?.add(candidate)
  }

  private addBootstrap(payload: unknown): void {
    const nodeInfo = this.gate.accept(payload)
    if (!nodeInfo || nodeInfo.signId === this.mine?.signId || this.closed) return
    if (!this.table) {
      this.bootstrapQueue.push(nodeInfo)
      return
    }
    const id = nodeIdOf(nodeInfo.signId)
    if (id && this.table.get(id)) return
    this.bootstrapQueue.push(nodeInfo)
    void this.bootstrap()
  }

  /** Pings the bootstrap nodes, looks up our own id, then publishes our nodeInfo. */
  bootstrap(): Promise<void> {
    if (this.refreshing || !this.table) return this.refreshing ?? Promise.resolve()
    this.refreshing = (async () => {
      await this.loaded
      while (this.bootstrapQueue.length && !this.closed) {
        const batch = this.bootstrapQueue.splice(0, 16)
        await Promise.all(batch.map((n) => this.call(n, 'ping')))
      }
      if (this.closed || !this.selfId) return
      if (this.table?.count() === 0) this.platform.messaging.send('transports.requestBootstrapNodeInfo', 'local', null)
      const near = await this.runLookup(this.selfId, false)
      // Our id is the key of our nodeInfo: the self-lookup already found where to store it.
      await this.publish(near.closest)
      this.emit('ready')
    })().finally(() => {
      this.refreshing = undefined
      if (this.bootstrapQueue.length && !this.closed) void this.bootstrap()
    })
    return this.refreshing
  }

  /**
   * Stores our nodeInfo at the K nodes closest to each of its keys (`nearSelf`: those closest to
   * our id, when a lookup just found them).
   */
  async publish(nearSelf?: LookupContact[]): Promise<void> {
    const mine = this.mine
    if (!mine || this.closed || !this.table || this.table.count() === 0) return
    for (const key of [nodeIdOf(mine.signId), boxKeyOf(mine.boxId)]) {
      if (!key) continue
      const closest = nearSelf && key.equals(this.selfId as Buffer) ? nearSelf : (await this.runLookup(key, false)).closest
      await Promise.all(closest.map((c) => this.call(c.nodeInfo, 'store', { key: key.toString('hex'), value: mine })))
    }
    this.saveContacts()
  }

  private async load(): Promise<void> {
    await this.values.load((v) => this.gate.accept(v))
    const saved = await new Promise<string | undefined>((resolve) => {
      if (!this.storage) return resolve(undefined)
      try {
        this.storage.get(CONTACTS_KEY, (err, value) => resolve(err ? undefined : value))
      } catch {
        resolve(undefined)
      }
    })
    if (!saved) return
    try {
      for (const n of JSON.parse(saved) as unknown[]) {
        const nodeInfo = this.gate.accept(n)
        if (nodeInfo) this.bootstrapQueue.push(nodeInfo)
      }
    } catch {
      this.logger.warn({}, 'kademlia: ignoring stored contacts that do not parse')
    }
  }

  private saveContacts(): void {
    if (!this.storage || !this.table || this.closed) return
    const list = this.table.toArray().slice(-MAX_SAVED_CONTACTS).map((c) => c.nodeInfo)
    if (list.length === 0) return
    this.values.write(CONTACTS_KEY, JSON.stringify(list), 'contacts')
  }

  /**
   * Saves contacts, stops timers and listeners, fails pending RPCs, and waits (at most
   * {@link CLOSE_WRITES_MS}) for the store's writes in flight, so none lands after close.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.saveContacts()
    this.closed = true
    this.subs.close()
    clearInterval(this.republishTimer)
    clearInterval(this.sweepTimer)
    for (const p of [...this.pending.values()]) p.resolve(null)
    await this.refreshing?.catch(() => {})
    await this.values.writes.idle(CLOSE_WRITES_MS)
  }
}
