/** An in-memory kad-fs compatible store, for tests and throwaway nodes. Nothing survives exit. */
import { Readable } from 'node:stream'
import { checkKey, checkValue, notFound, type BatchOp, type GetCallback, type DoneCallback, type KadStore, type RangeOptions, type StoreEntry } from './store.js'
import { settle } from './callbackify.js'

/** What a batch resolves with: applied at once, nothing to wait for. */
const APPLIED: Promise<void> = Promise.resolve()

export class MemoryStore implements KadStore {
  private readonly map = new Map<string, string>()

  /**
   * Many writes at once, all or none (checked first, then applied together): one resolved
   * promise instead of one per write. Absent from a subclass that changes put or del (a slow or
   * failing store in tests): its writes keep going through them, one by one. A subclass's own
   * batch is its own.
   */
  batch?(ops: BatchOp[], options?: { sync?: boolean }): Promise<void>
  /** {@link KadStore.batchNow}: present with `batch` (applied within the call always). */
  batchNow?(ops: BatchOp[], options?: { sync?: boolean }): boolean

  /**
   * A key range read from the map at once (a snapshot, as createReadStream is). Without it every
   * range (the outbox, the seen ids and the stored nodeInfo at each start) went through a read
   * stream of the whole store: its first use cost a fresh process about 2 ms of CPU before
   * `ready`. Absent from a subclass that changes createReadStream (its reads keep going through
   * it); a subclass's own range is its own.
   */
  range?(options: RangeOptions): Promise<StoreEntry[]>

  constructor() {
    const proto = new.target.prototype as MemoryStore
    if (proto.batch === undefined && proto.put === MemoryStore.prototype.put && proto.del === MemoryStore.prototype.del) {
      this.batch = (ops) => this.applyBatch(ops)
      this.batchNow = (ops) => {
        this.applyNow(ops)
        return true
      }
    }
    if (proto.range === undefined && proto.createReadStream === MemoryStore.prototype.createReadStream) {
      this.range = (options) => Promise.resolve(this.rangeNow(options))
    }
  }

  private rangeNow({ gte, lt, limit, values }: RangeOptions): StoreEntry[] {
    const out: StoreEntry[] = []
    for (const [key, value] of this.map) if (key >= gte && key < lt) out.push({ key, value: values === false ? '' : value })
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    if (limit !== undefined && limit >= 0 && out.length > limit) out.length = limit
    return out
  }

  private applyBatch(ops: BatchOp[]): Promise<void> {
    try {
      this.applyNow(ops)
    } catch (err) {
      return Promise.reject(err)
    }
    return APPLIED
  }

  /** Checks every op, then applies them all; throws (applying none) for a bad one. */
  private applyNow(ops: BatchOp[]): void {
    for (const op of ops) {
      checkKey(op.key)
      if (op.type === 'put') checkValue(op.value)
    }
    const map = this.map
    for (const op of ops) {
      if (op.type === 'put') map.set(op.key, op.value as string)
      else map.delete(op.key)
    }
  }

  get(key: string): Promise<string>
  get(key: string, callback: GetCallback): void
  get(key: string, callback?: GetCallback): Promise<string> | void {
    return settle(
      (async () => {
        checkKey(key)
        const value = this.map.get(key)
        if (value === undefined) throw notFound(key)
        return value
      })(),
      callback
    )
  }

  put(key: string, value: string): Promise<void>
  put(key: string, value: string, callback: DoneCallback): void
  put(key: string, value: string, callback?: DoneCallback): Promise<void> | void {
    return settle(
      (async () => {
        checkKey(key)
        checkValue(value)
        this.map.set(key, value)
      })(),
      callback
    )
  }

  del(key: string): Promise<void>
  del(key: string, callback: DoneCallback): void
  del(key: string, callback?: DoneCallback): Promise<void> | void {
    return settle(
      (async () => {
        checkKey(key)
        this.map.delete(key)
      })(),
      callback
    )
  }

  createReadStream(): Readable {
    // A snapshot, like LevelDB's iterator: later writes do not disturb a running read.
    return Readable.from([...this.map].map(([key, value]) => ({ key, value })))
  }

  getSync(key: string): string | null {
    return this.map.get(key) ?? null
  }

  isEmptySync(): boolean {
    return this.map.size === 0
  }
}
