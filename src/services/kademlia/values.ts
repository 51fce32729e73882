/**
 * What this node stores for others: signed nodeInfos under their hashed keys (ids.ts), in memory
 * and in a kad-fs compatible store (`kad.v.<hex key>`), so they survive a restart.
 *
 * Bounds: at most MAX_VALUES in total and MAX_VALUES_PER_PEER stored by any one sender (a value
 * counts against the peer that stored it last); a value leaves when its nodeInfo is no longer
 * fresh (expiry) or when a newer one replaces it.
 */
import type { KadStore } from '../../storage/store.js'
import type { NodeInfo } from '../../platform/node-info.js'
import type { Logger } from '../../logger.js'
import { PendingWrites } from './pending-writes.js'

export const MAX_VALUES = 10_000
export const MAX_VALUES_PER_PEER = 8
const PREFIX = 'kad.v.'

interface Entry {
  nodeInfo: NodeInfo
  storedBy: string
}

export class ValueStore {
  private readonly values = new Map<string, Entry>()
  private readonly perPeer = new Map<string, number>()
  /** Stores refused by a bound. */
  refused = 0
  /** Writes to the store still in flight (close waits for them). */
  readonly writes = new PendingWrites()

  constructor(
    private readonly store: KadStore | undefined,
    private readonly logger: Logger,
    private readonly maxPerPeer = MAX_VALUES_PER_PEER,
    private readonly maxValues = MAX_VALUES
  ) {}

  get size(): number {
    return this.values.size
  }

  get(hexKey: string): NodeInfo | undefined {
    return this.values.get(hexKey)?.nodeInfo
  }

  /** Stores a checked value; false when a bound refuses it or a newer one is held. */
  put(hexKey: string, nodeInfo: NodeInfo, storedBy: string): boolean {
    const old = this.values.get(hexKey)
    if (old && (old.nodeInfo.timestamp ?? 0) > (nodeInfo.timestamp ?? 0)) return false
    if (!old || old.storedBy !== storedBy) {
      if ((this.perPeer.get(storedBy) ?? 0) >= this.maxPerPeer || (!old && this.values.size >= this.maxValues)) {
        this.refused++
        return false
      }
    }
    if (old) this.uncount(old.storedBy)
    this.values.set(hexKey, { nodeInfo, storedBy })
    this.perPeer.set(storedBy, (this.perPeer.get(storedBy) ?? 0) + 1)
    this.persist(hexKey, JSON.stringify({ nodeInfo, storedBy }))
    return true
  }

  /** Drops every value for which `keep` says false (expiry sweep). */
  sweep(keep: (n: NodeInfo) => boolean): number {
    let n = 0
    for (const [key, entry] of this.values) {
      if (keep(entry.nodeInfo)) continue
      this.values.delete(key)
      this.uncount(entry.storedBy)
      this.remove(key)
      n++
    }
    return n
  }

  /** Loads what an earlier run stored; each value still passes `check`. */
  async load(check: (value: unknown) => NodeInfo | undefined): Promise<void> {
    const store = this.store
    if (!store) return
    await new Promise<void>((resolve) => {
      const stream = store.createReadStream()
      stream.on('data', (entry: { key?: unknown; value?: unknown }) => {
        const key = typeof entry?.key === 'string' ? entry.key : ''
        if (!key.startsWith(PREFIX) || typeof entry.value !== 'string') return
        try {
          const parsed = JSON.parse(entry.value) as { nodeInfo?: unknown; storedBy?: unknown }
          const nodeInfo = check(parsed.nodeInfo)
          if (nodeInfo && typeof parsed.storedBy === 'string') this.put(key.slice(PREFIX.length), nodeInfo, parsed.storedBy)
        } catch {
          // a corrupt entry is skipped
        }
      })
      stream.on('error', (err: unknown) => {
        this.logger.warn({ err }, 'kademlia: could not read stored values')
        resolve()
      })
      stream.on('end', () => resolve())
      stream.on('close', () => resolve())
    })
  }

  private uncount(peer: string): void {
    const n = (this.perPeer.get(peer) ?? 1) - 1
    if (n <= 0) this.perPeer.delete(peer)
    else this.perPeer.set(peer, n)
  }

  /** Writes the contacts list (or any other key of the service) through the same count. */
  write(key: string, text: string, what: string): void {
    const store = this.store
    if (!store) return
    const done = this.writes.track((err) => {
      if (err) this.logger.warn({ err }, `kademlia: could not store ${what}`)
    })
    try {
      store.put(key, text, done)
    } catch (err) {
      done(err as Error)
    }
  }

  private persist(hexKey: string, text: string): void {
    this.write(PREFIX + hexKey, text, 'a value')
  }

  private remove(hexKey: string): void {
    const store = this.store
    if (!store) return
    const done = this.writes.track(() => {})
    try {
      store.del(PREFIX + hexKey, done)
    } catch {
      done()
    }
  }
}
