/**
 * The nodeInfo of peers we have messages waiting for, kept in storage
 * (`delivery.nodeInfo.<signId>`), so that after a restart delivery resumes without a discovery
 * service: a node keeps its ports across restarts (platform/stable-ports.ts), so what we last
 * knew of it is likely still right. Stored when the directory gives a nodeInfo for a peer with
 * pending messages, or when messages are appended for a peer whose nodeInfo the directory gave
 * in this run; kept after that (bounded: the oldest go first), since the next message to that
 * peer may again wait across a restart.
 *
 * What is read back is checked as the directory checks a nodeInfo (transports/connection-info.ts:
 * shape, boxId derived from signId, the signature when there is one), and must be of the signId
 * in its key, under {@link MAX_STORED_NODE_INFO_BYTES}, and not stale (signed more than
 * {@link STORED_NODE_INFO_MAX_AGE_MS} ago or more than a day ahead). One that fails is removed
 * with a warning naming the peer whose address was lost: messages waiting for it stay in the
 * outbox and go once the directory finds that peer again. A stored one that no longer reaches
 * its peer is passed over for the directory's (dialFailed), and replaced by it.
 */
import type { Logger } from '../logger.js'
import { parseId } from '../identity/ids.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import { checkNodeInfo, type NodeInfo } from '../transports/connection-info.js'

const NODE_INFO = 'delivery.nodeInfo.'
/** Most nodeInfo kept in storage. */
export const MAX_STORED_NODE_INFO = 10_000
/** Largest stored nodeInfo read back: 16 connectionInfo entries take far less. */
export const MAX_STORED_NODE_INFO_BYTES = 16 * 1024
/**
 * A stored signed nodeInfo older than this is stale: dropped at load. Longer than messages
 * usually wait (expireAfter defaults to 7 days), short enough that a peer gone for good is forgotten.
 */
export const STORED_NODE_INFO_MAX_AGE_MS = 30 * 24 * 3_600_000
/** A signed one dated further ahead than this cannot be right (a broken clock or damage). */
const MAX_FUTURE_MS = 24 * 3_600_000

export class StoredNodeInfo {
  private readonly logger: Logger
  private readonly storage: PlatformStorage | undefined
  private readonly nodeInfos = new Map<string, NodeInfo>()
  /** Peers a dial from the stored nodeInfo just failed for: the directory is asked first. */
  private readonly storedFailed = new Set<string>()
  /** What the directory gave in this run (bounded like the stored ones). */
  private readonly known = new Map<string, NodeInfo>()
  /** nodeInfo writes under way: a message for that peer counts as accepted only once it is done. */
  private readonly writing = new Map<string, Promise<void>>()

  constructor(logger: Logger, storage: PlatformStorage | undefined) {
    this.logger = logger
    this.storage = storage
  }

  /**
   * Reads what is stored (storage open). One that is damaged, oversized, of another signId or
   * stale is removed with a warning that says whose address was lost; the node starts anyway.
   */
  async load(now = Date.now()): Promise<void> {
    const storage = this.storage
    if (!storage) return
    for (const { key, value } of await storage.range({ gte: NODE_INFO, lt: NODE_INFO + '\uffff' })) {
      const signId = key.slice(NODE_INFO.length)
      const checked = readStored(signId, value, now)
      if ('nodeInfo' in checked) {
        this.nodeInfos.set(signId, checked.nodeInfo)
        continue
      }
      this.logger.warn(
        { key, signId, reason: checked.reason },
        `stored nodeInfo dropped (${checked.reason}): the stored address of ${signId.slice(0, 60)} is lost; messages waiting for it stay in the outbox and go once the directory finds it`
      )
      // The entry is already ignored; a failed removal only means the same warning next start.
      await storage.del(key).catch((err: unknown) => this.logger.warn({ err, key }, 'cannot remove a damaged stored nodeInfo'))
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
  pending(signId: string): Promise<void> {
    const known = this.known.get(signId)
    if (known && !this.nodeInfos.has(signId)) this.store(signId, known)
    return this.writing.get(signId) ?? Promise.resolve()
  }

  private store(signId: string, nodeInfo: NodeInfo): void {
    if (!this.storage || !parseId(signId)) return
    const value = JSON.stringify(nodeInfo)
    const old = this.nodeInfos.get(signId)
    this.storedFailed.delete(signId)
    if (old && JSON.stringify(old) === value) return
    this.nodeInfos.set(signId, nodeInfo)
    const write = this.storage.put(NODE_INFO + signId, value).then(
      () => {},
      (err: unknown) => this.logger.warn({ err }, 'cannot store a nodeInfo')
    )
    this.writing.set(signId, write)
    void write.then(() => {
      if (this.writing.get(signId) === write) this.writing.delete(signId)
    })
    if (this.nodeInfos.size > MAX_STORED_NODE_INFO) this.forget(this.nodeInfos.keys().next().value as string)
  }

  /** Drops the stored nodeInfo of `signId`. */
  private forget(signId: string): void {
    if (!this.nodeInfos.delete(signId) || !this.storage) return
    this.storedFailed.delete(signId)
    this.storage.del(NODE_INFO + signId).catch(() => {})
  }
}

/** A stored value as a nodeInfo of `signId`, or why it cannot be used. */
function readStored(signId: string, value: string, now: number): { nodeInfo: NodeInfo } | { reason: string } {
  if (!parseId(signId)) return { reason: 'its key does not name a signId' }
  if (value.length > MAX_STORED_NODE_INFO_BYTES) return { reason: `${value.length} bytes, more than ${MAX_STORED_NODE_INFO_BYTES}` }
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    return { reason: 'not JSON' }
  }
  const checked = checkNodeInfo(parsed)
  if ('reason' in checked) return checked
  const nodeInfo = checked.nodeInfo
  if (nodeInfo.signId !== signId) return { reason: 'it is the nodeInfo of another signId' }
  const ts = nodeInfo.timestamp
  if (ts !== undefined && ts < now - STORED_NODE_INFO_MAX_AGE_MS) return { reason: `stale: signed ${Math.round((now - ts) / 86_400_000)} days ago` }
  if (ts !== undefined && ts > now + MAX_FUTURE_MS) return { reason: 'stale: signed in the future' }
  return { nodeInfo }
}
