/** An in-memory kad-fs compatible store, for tests and throwaway nodes. Nothing survives exit. */
import { Readable } from 'node:stream'
import { checkKey, checkValue, notFound, type GetCallback, type DoneCallback, type KadStore } from './store.js'
import { settle } from './callbackify.js'

export class MemoryStore implements KadStore {
  private readonly map = new Map<string, string>()

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
