/**
 * The gate every nodeInfo from the network passes before a service uses it or hands it to the
 * platform (DESIGN: "only signed, fresh nodeInfo crosses the network").
 *
 * A record passes when it is small, well formed (checkNodeInfo: ids, boxId = ed2curve(signId),
 * bounded connectionInfo), signed by its own signId, not older than `maxAgeMs` and not dated more
 * than `maxSkewMs` in the future. Everything else is dropped and counted by reason; nothing throws.
 */
import { checkNodeInfo, type NodeInfo } from '../../platform/node-info.js'

/** Largest nodeInfo accepted from the network, bytes of its JSON text. */
export const MAX_NODE_INFO_BYTES = 2048
/**
 * Oldest signature accepted. The platform's directory re-signs its nodeInfo every 30 minutes
 * (NODE_INFO_RESIGN_MS there) and services republish it, so an honest record is never this old.
 */
export const NODE_INFO_MAX_AGE_MS = 2 * 60 * 60_000
/** How far in the future a timestamp may be (clock skew between hosts). */
export const NODE_INFO_MAX_SKEW_MS = 5 * 60_000

/**
 * Records that passed the signature check, by their JSON text: a DHT sees the same records again
 * and again, and an Ed25519 verify costs ~50 us. Keyed by the whole text, so a changed record
 * misses; shared by every gate in the process (the result depends on the text only); bounded.
 */
const VERIFIED_CACHE_SIZE = 8192
const verified = new Map<string, NodeInfo>()

/** Why a remote nodeInfo was refused. */
export type DropReason = 'oversized' | 'malformed' | 'unsigned' | 'forged' | 'stale' | 'future'

export interface NodeInfoGateOptions {
  now?: () => number
  maxAgeMs?: number
  maxSkewMs?: number
  maxBytes?: number
}

/** Checks remote nodeInfo and counts what it drops. */
export class NodeInfoGate {
  /** Records refused, by reason. */
  readonly dropped: Record<DropReason, number> = { oversized: 0, malformed: 0, unsigned: 0, forged: 0, stale: 0, future: 0 }
  private readonly now: () => number
  private readonly maxAgeMs: number
  private readonly maxSkewMs: number
  private readonly maxBytes: number

  constructor(options: NodeInfoGateOptions = {}) {
    this.now = options.now ?? Date.now
    this.maxAgeMs = options.maxAgeMs ?? NODE_INFO_MAX_AGE_MS
    this.maxSkewMs = options.maxSkewMs ?? NODE_INFO_MAX_SKEW_MS
    this.maxBytes = options.maxBytes ?? MAX_NODE_INFO_BYTES
  }

  /** A clean, checked copy of `value`, or the reason it is refused (also counted). */
  check(value: unknown): { nodeInfo: NodeInfo } | { reason: DropReason } {
    let text: string
    try {
      text = JSON.stringify(value) ?? ''
    } catch {
      return this.drop('malformed')
    }
    if (text.length > this.maxBytes || Buffer.byteLength(text) > this.maxBytes) return this.drop('oversized')
    const hit = verified.get(text)
    if (hit) return this.fresh(hit)
    const v = value as Record<string, unknown> | null
    if (!v || typeof v !== 'object') return this.drop('malformed')
    if (v.signature === undefined && v.timestamp === undefined) {
      // Checked for shape first so that garbage is counted as malformed, not unsigned.
      return this.drop('reason' in checkNodeInfo(value) ? 'malformed' : 'unsigned')
    }
    const checked = checkNodeInfo(value)
    if ('reason' in checked) return this.drop(/signature does not verify/.test(checked.reason) ? 'forged' : 'malformed')
    if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value as string)
    verified.set(text, checked.nodeInfo)
    return this.fresh(checked.nodeInfo)
  }

  private fresh(nodeInfo: NodeInfo): { nodeInfo: NodeInfo } | { reason: DropReason } {
    const timestamp = nodeInfo.timestamp as number
    const now = this.now()
    if (timestamp > now + this.maxSkewMs) return this.drop('future')
    if (timestamp < now - this.maxAgeMs) return this.drop('stale')
    return { nodeInfo }
  }

  /** Like {@link check}, for callers that only want the nodeInfo. */
  accept(value: unknown): NodeInfo | undefined {
    const r = this.check(value)
    return 'nodeInfo' in r ? r.nodeInfo : undefined
  }

  /** True while a nodeInfo that passed {@link check} is still fresh (nothing counted). */
  isFresh(nodeInfo: { timestamp?: number }): boolean {
    const t = nodeInfo.timestamp
    const now = this.now()
    return typeof t === 'number' && t >= now - this.maxAgeMs && t <= now + this.maxSkewMs
  }

  /** Total records refused. */
  get droppedTotal(): number {
    return Object.values(this.dropped).reduce((a, b) => a + b, 0)
  }

  private drop(reason: DropReason): { reason: DropReason } {
    this.dropped[reason]++
    return { reason }
  }
}
