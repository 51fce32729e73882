/**
 * The nodeInfo of peers we have messages waiting for, kept in storage
 * (`delivery.nodeInfo.<signId>`), so that after a restart delivery resumes without a discovery
 * service: a node keeps its ports across restarts (platform/stable-ports.ts), so what we last
 * knew of it is likely still right. Stored when the directory gives a nodeInfo for a peer with
 * pending messages, or when messages are appended for a peer whose nodeInfo the directory gave
 * in this run; kept after that (bounded: the oldest go first), since the next message to that
 * peer may again wait across a restart.
 */
import type { Logger } from '../logger.js'
import { parseId } from '../identity/ids.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import type { NodeInfo } from '../transports/connection-info.js'

const NODE_INFO = 'delivery.nodeInfo.'
/** Most nodeInfo kept in storage. */
export const MAX_STORED_NODE_INFO = 10_000

export class StoredNodeInfo {
  private readonly logger: Logger
  private readonly storage: PlatformStorage | undefined
  private readonly nodeInfos = new Map<string, NodeInfo>()
  /** Peers a dial from the stored nodeInfo just failed for: the directory is asked first. */
  private readonly storedFailed = new Set<string>()
  /** What the directory gave in this run (bounded like the stored ones). */
  private readonly known = new Map<string, NodeInfo>()

  constructor(logger: Logger, storage: PlatformStorage | undefined) {
    this.logger = logger
    this.storage = storage
  }

  /** Reads what is stored (storage open); one that does not decode is dropped with a warning. */
  async load(): Promise<void> {
    const storage = this.storage
    if (!storage) return
    for (const { key, value } of await storage.range({ gte: NODE_INFO, lt: NODE_INFO + '\uffff' })) {
      try {
        this.nodeInfos.set(key.slice(NODE_INFO.length), JSON.parse(value) as NodeInfo)
      } catch (err) {
        this.logger.warn({ err, key }, 'a stored nodeInfo does not decode; it is dropped')
        await storage.del(key)
      }
    }
  }

  /**
   * The nodeInfo to dial `signId` with: the stored one (unless a dial from it just failed), else
   * the directory's (stored when `pending`), else the stored one after all.
   */
  async nodeInfoFor(signId: string, directory: (signId: string) => Promise<NodeInfo>, pending: boolean): Promise<NodeInfo> {
    const stored = this.nodeInfos.get(signId)
    if (stored && !this.storedFailed.has(signId)) return stored
    try {
      const nodeInfo = await directory(signId)
      this.known.delete(signId)
      this.known.set(signId, nodeInfo)
      if (this.known.size > MAX_STORED_NODE_INFO) this.known.delete(this.known.keys().next().value as string)
      if (pending) this.store(signId, nodeInfo)
      return nodeInfo
    } catch (err) {
      if (!stored) throw err
      this.storedFailed.delete(signId) // the directory has nothing better: try the stored one again
      return stored
    }
  }

  /** A dial failed: the next one asks the directory first. */
  dialFailed(signId: string): void {
    if (this.nodeInfos.has(signId)) this.storedFailed.add(signId)
  }

  /** Messages now wait for `signId`: store what the directory gave for it in this run, if not yet. */
  pending(signId: string): void {
    const known = this.known.get(signId)
    if (known && !this.nodeInfos.has(signId)) this.store(signId, known)
  }

  private store(signId: string, nodeInfo: NodeInfo): void {
    if (!this.storage || !parseId(signId)) return
    const value = JSON.stringify(nodeInfo)
    const old = this.nodeInfos.get(signId)
    this.storedFailed.delete(signId)
    if (old && JSON.stringify(old) === value) return
    this.nodeInfos.set(signId, nodeInfo)
    this.storage.put(NODE_INFO + signId, value).catch((err: unknown) => this.logger.warn({ err }, 'cannot store a nodeInfo'))
    if (this.nodeInfos.size > MAX_STORED_NODE_INFO) this.forget(this.nodeInfos.keys().next().value as string)
  }

  /** Drops the stored nodeInfo of `signId`. */
  private forget(signId: string): void {
    if (!this.nodeInfos.delete(signId) || !this.storage) return
    this.storedFailed.delete(signId)
    this.storage.del(NODE_INFO + signId).catch(() => {})
  }
}
