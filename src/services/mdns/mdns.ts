/**
 * LAN discovery over multicast DNS (RFC 6762) with DNS-SD names (RFC 6763), as a service built on
 * the platform's public messaging only (the seed's `mm-services-mdns`).
 *
 * Records: each node announces `PTR _mm-platform._udp.local -> <z32(signId)>._mm-platform._udp.local`
 * and, on that instance name, a TXT record whose strings (at most 255 bytes each) joined are the
 * node's signed nodeInfo as JSON. Peers that receive it check it (NodeInfoGate: signed by its
 * signId, fresh, small; the instance label must name the same signId) and hand it to the platform
 * as a local `transports.nodeInfo`, and to DHTs as `transports.nodeInfoBootstrap`.
 *
 * Messages: answers `self.transports.requestNodeInfo` (from what it heard, else by asking the LAN
 * for that instance's TXT), `self.directory.get` (boxId -> signId of a node it heard of) and
 * `self.transports.requestBootstrapNodeInfo`; watches `self.transports.myNodeInfo` to announce.
 */
import { EventEmitter } from 'node:events'
import makeMdns from 'multicast-dns'
import type { Answer, Question } from 'dns-packet'
import z32 from 'z32'
import { parseId } from '../../identity/ids.js'
import type { NodeInfo } from '../../platform/node-info.js'
import { silentLogger, type Logger } from '../../logger.js'
import { NodeInfoGate, MAX_NODE_INFO_BYTES, type NodeInfoGateOptions } from '../shared/remote-node-info.js'
import { checkPlatform, Subscriptions, type ServicePlatform } from '../shared/platform-port.js'
import { joinTxt, splitTxt } from '../shared/txt.js'

/** DNS-SD service type of mm-platform nodes. */
export const SERVICE_TYPE = '_mm-platform._udp.local'
/** TTL of our records, seconds. */
export const RECORD_TTL_S = 120
/** How often we ask the LAN for nodes again, ms (also re-announces our own record). */
export const QUERY_INTERVAL_MS = 60_000
/** Most nodes remembered from the LAN; the least recently heard is forgotten first. */
export const MAX_KNOWN_NODES = 1024
/** Most records read from one mDNS packet. */
export const MAX_RECORDS_PER_PACKET = 64
/** We answer the same question at most once per this many ms (RFC 6762 6: once per second). */
export const ANSWER_INTERVAL_MS = 250

export interface MulticastDNSOptions {
  /** The platform whose messaging the service uses. */
  platform: unknown
  /** Interface address to send and join the group on (default: every IPv4 interface). */
  interface?: string
  /** Address to bind (default: as multicast-dns; `'0.0.0.0'` in a network namespace). */
  bind?: string
  /** UDP port (default 5353) and group (default 224.0.0.251): change only for tests. */
  port?: number
  ip?: string
  queryIntervalMs?: number
  logger?: Logger
  /** Freshness rules for received records (see NodeInfoGate). */
  gate?: NodeInfoGateOptions
}

/** Counters of the service. */
export interface MulticastDNSStats {
  announced: number
  discovered: number
  /** Records refused by the nodeInfo gate, by reason. */
  dropped: NodeInfoGate['dropped']
  /** Records that do not parse, are too large, or whose name does not match their signId. */
  hostile: number
}

/**
 * `new MulticastDNS({ platform })`: announces this node on the LAN and finds the others.
 * Emits `peer` (nodeInfo) when it hears of a node for the first time or with a newer record.
 */
export class MulticastDNS extends EventEmitter {
  readonly stats: MulticastDNSStats
  private readonly platform: ServicePlatform
  private readonly logger: Logger
  private readonly gate: NodeInfoGate
  private readonly subs: Subscriptions
  private readonly mdns: makeMdns.MulticastDNS
  private readonly known = new Map<string, NodeInfo>()
  private readonly lastAnswer = new Map<string, number>()
  private mine: NodeInfo | undefined
  private myInstance: string | undefined
  private readonly timers = new Set<NodeJS.Timeout>()
  private queryTimer: NodeJS.Timeout | undefined
  private closed = false

  constructor(options: MulticastDNSOptions) {
    super()
    this.platform = checkPlatform(options?.platform, 'MulticastDNS')
    this.logger = options.logger ?? this.platform.logger ?? silentLogger
    this.gate = new NodeInfoGate(options.gate)
    this.stats = { announced: 0, discovered: 0, dropped: this.gate.dropped, hostile: 0 }
    this.mdns = makeMdns({ interface: options.interface, bind: options.bind, port: options.port, ip: options.ip, multicast: true, loopback: true })
    this.mdns.on('query', (q) => this.onQuery(q.questions))
    this.mdns.on('response', (r) => this.onResponse([...(r.answers ?? []), ...(r.additionals ?? [])]))
    // Socket trouble (a network going away) is logged, never thrown into the event loop.
    this.mdns.on('error', (err: Error) => this.logger.warn({ err }, 'mdns: socket error'))
    this.mdns.on('warning', (err: Error) => this.logger.debug({ err }, 'mdns: warning'))
    this.subs = new Subscriptions(this.platform.messaging)
    this.subs.on('self.transports.myNodeInfo', (_t, sender, payload) => {
      if (sender === 'local') this.onMyNodeInfo(payload as NodeInfo)
    })
    this.subs.on('self.transports.requestNodeInfo', (_t, sender, signId) => {
      if (sender === 'local' && typeof signId === 'string') this.resolve(signId)
    })
    this.subs.on('self.directory.get', (_t, sender, key) => {
      if (sender === 'local' && typeof key === 'string') this.answerDirectoryGet(key)
    })
    this.subs.on('self.transports.requestBootstrapNodeInfo', (_t, sender) => {
      if (sender === 'local') for (const n of this.known.values()) this.platform.messaging.send('transports.nodeInfoBootstrap', 'local', n)
    })
    // Ask at once: a node already ready publishes its nodeInfo on this request.
    this.platform.messaging.send('transports.requestMyNodeInfo', 'local', null)
    this.query()
    this.later(1000, () => this.query())
    this.queryTimer = setInterval(() => {
      this.query()
      this.announce()
    }, options.queryIntervalMs ?? QUERY_INTERVAL_MS)
    this.queryTimer.unref()
  }

  /** Nodes heard of on the LAN (checked, fresh when heard). */
  peers(): NodeInfo[] {
    return [...this.known.values()]
  }

  /** Asks the LAN for `signId`'s record; a found one arrives as `transports.nodeInfo`. */
  resolve(signId: string): void {
    if (this.closed) return
    const hit = this.known.get(signId)
    if (hit && this.gate.isFresh(hit)) {
      this.platform.messaging.send('transports.nodeInfo', 'local', hit)
      return
    }
    const key = parseId(signId)
    if (!key) return
    this.mdns.query({ questions: [{ name: instanceName(key), type: 'TXT' }] })
  }

  private onMyNodeInfo(nodeInfo: NodeInfo): void {
    if (this.closed || !nodeInfo || typeof nodeInfo.signId !== 'string') return
    const key = parseId(nodeInfo.signId)
    if (!key) return
    const first = this.mine === undefined
    this.mine = nodeInfo
    this.myInstance = instanceName(key)
    this.announce()
    // RFC 6762 8.3: announce twice, one second apart.
    if (first) this.later(1000, () => this.announce())
  }

  private announce(): void {
    if (this.closed || !this.mine) return
    this.stats.announced++
    this.mdns.respond({ answers: this.records() })
  }

  private query(): void {
    if (this.closed) return
    this.mdns.query({ questions: [{ name: SERVICE_TYPE, type: 'PTR' }] })
  }

  private records(): Answer[] {
    const mine = this.mine as NodeInfo
    const instance = this.myInstance as string
    return [
      { name: SERVICE_TYPE, type: 'PTR', ttl: RECORD_TTL_S, data: instance },
      { name: instance, type: 'TXT', ttl: RECORD_TTL_S, data: splitTxt(JSON.stringify(mine)) }
    ]
  }

  private onQuery(questions: Question[] | undefined): void {
    if (this.closed || !this.mine || !Array.isArray(questions)) return
    for (const q of questions.slice(0, MAX_RECORDS_PER_PACKET)) {
      const name = typeof q?.name === 'string' ? q.name.toLowerCase() : ''
      const wants = (q.type as string) === 'ANY' || (name === SERVICE_TYPE && q.type === 'PTR') || (name === this.myInstance && q.type === 'TXT')
      if (!wants || (name !== SERVICE_TYPE && name !== this.myInstance)) continue
      const now = Date.now()
      if (now - (this.lastAnswer.get(name) ?? 0) < ANSWER_INTERVAL_MS) continue
      this.lastAnswer.set(name, now)
      this.mdns.respond({ answers: this.records() })
      return // one answer carries both records
    }
  }

  private onResponse(records: Answer[]): void {
    if (this.closed) return
    for (const record of records.slice(0, MAX_RECORDS_PER_PACKET)) {
      if (record?.type !== 'TXT' || typeof record.name !== 'string') continue
      const name = record.name.toLowerCase()
      if (!name.endsWith('.' + SERVICE_TYPE) || name === this.myInstance) continue
      this.onRecord(name.slice(0, -(SERVICE_TYPE.length + 1)), record.data)
    }
  }

  /** One TXT record of another node: join, parse, check, then hand on. */
  private onRecord(label: string, data: unknown): void {
    // Joined up to 4x the bound, so that a long record reaches the gate and counts as oversized.
    const text = joinTxt(data, 4 * MAX_NODE_INFO_BYTES)
    let value: unknown
    try {
      value = text === undefined ? undefined : JSON.parse(text)
    } catch {
      value = undefined
    }
    if (value === undefined) {
      this.stats.hostile++
      return
    }
    const nodeInfo = this.gate.accept(value)
    if (!nodeInfo) return
    const key = parseId(nodeInfo.signId) as Buffer
    if (z32.encode(key) !== label) {
      this.stats.hostile++ // a record filed under another node's name
      return
    }
    const previous = this.known.get(nodeInfo.signId)
    if (previous && (previous.timestamp ?? 0) >= (nodeInfo.timestamp ?? 0)) return
    this.known.delete(nodeInfo.signId)
    this.known.set(nodeInfo.signId, nodeInfo)
    while (this.known.size > MAX_KNOWN_NODES) this.known.delete(this.known.keys().next().value as string)
    if (!previous) this.stats.discovered++
    this.platform.messaging.send('transports.nodeInfo', 'local', nodeInfo)
    this.platform.messaging.send('transports.nodeInfoBootstrap', 'local', nodeInfo)
    this.emit('peer', nodeInfo)
  }

  private answerDirectoryGet(boxId: string): void {
    for (const n of this.known.values()) {
      if (n.boxId === boxId) {
        this.platform.messaging.send('directory.getReply', 'local', { key: boxId, value: n.signId })
        return
      }
    }
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t)
      fn()
    }, ms)
    t.unref()
    this.timers.add(t)
  }

  /** Stops announcing and listening; releases the socket and timers. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    this.subs.close()
    if (this.queryTimer) clearInterval(this.queryTimer)
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    return new Promise((resolve) => this.mdns.destroy(() => resolve()))
  }
}

/** `<z32(signId)>._mm-platform._udp.local`: one DNS label of 52 characters per node. */
export function instanceName(signKey: Uint8Array): string {
  return z32.encode(signKey) + '.' + SERVICE_TYPE
}
