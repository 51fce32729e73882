/** An in-memory kad-fs compatible store, for tests and throwaway nodes. Nothing survives exit. */
import { Readable } from 'node:stream'
import { checkKey, checkValue, notFound, type BatchOp, type GetCallback, type DoneCallback, type KadStore } from './store.js'
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

  constructor() {
    const proto = new.target.prototype as MemoryStore
    if (proto.batch === undefined && proto.put === MemoryStore.prototype.put && proto.del === MemoryStore.prototype.del) {
      this.batch = (ops) => this.applyBatch(ops)
    }
  }

  private applyBatch(ops: BatchOp[]): Promise<void> {
    try {
      for (const op of ops) {
        checkKey(op.key)
        if (op.type === 'put') checkValue(op.value)
      }
    } catch (err) {
      return Promise.reject(err)
    }
    const map = this.map
    for (const op of ops) {
      if (op.type === 'put') map.set(op.key, op.value as string)
      else map.delete(op.key)
    }
    return APPLIED
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
