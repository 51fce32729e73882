/**
 * How the platform talks to whatever store it was given: always with callbacks (the real kad-fs
 * throws without one), as promises inside, with typed errors, and with keys made file-safe for
 * stores we did not write (kad-fs turns a key into a path).
 */
import fs from 'node:fs'
import { StorageError } from '../errors.js'
import { isNotFound, type BatchOp, type KadStore, type RangeOptions, type StoreEntry, type BinaryEntry, type OpenBatch } from './store.js'
import { MemoryStore } from './memory-store.js'
import { LevelStore } from './level-store.js'
import { decodeKey, encodeKey } from './safe-keys.js'

export class PlatformStorage {
  readonly store: KadStore
  /** Our own stores take any key; a foreign one gets encoded keys. */
  private readonly encode: (key: string) => string
  private readonly decode: (name: string) => string | null

  constructor(store: KadStore) {
    for (const method of ['get', 'put', 'del', 'createReadStream'] as const) {
      if (typeof (store as unknown as Record<string, unknown>)[method] !== 'function') {
        throw new StorageError('ERR_STORAGE_UNAVAILABLE', `the storage option must be kad-fs compatible: it has no ${method}() method`)
      }
    }
    this.store = store
    const ours = store instanceof MemoryStore || store instanceof LevelStore
    this.encode = ours ? identity : encodeKey
    this.decode = ours ? identity : decodeKey
  }

  async open(): Promise<void> {
    if (typeof this.store.open === 'function') await this.store.open()
    const datadir = (this.store as { datadir?: unknown }).datadir
    if (typeof datadir === 'string' && !fs.existsSync(datadir)) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `the store's data directory ${datadir} does not exist`)
    }
  }

  async close(): Promise<void> {
    if (typeof this.store.close === 'function') await this.store.close()
  }

  /** The value, or undefined when the key is missing; other failures reject with StorageError. */
  get(key: string): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      try {
        this.store.get(this.encode(key), (err, value) => {
          if (err) return isNotFound(err) ? resolve(undefined) : reject(wrap(err, `cannot read '${key}'`))
          if (value === undefined || value === null) return resolve(undefined)
          resolve(typeof value === 'string' ? value : String(value))
        })
      } catch (err) {
        reject(wrap(err, `cannot read '${key}'`))
      }
    })
  }

  put(key: string, value: string): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.store.put(this.encode(key), value, (err) => (err ? reject(wrap(err, `cannot write '${key}'`)) : resolve()))
      } catch (err) {
        reject(wrap(err, `cannot write '${key}'`))
      }
    })
  }

  del(key: string): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.store.del(this.encode(key), (err) => (err && !isNotFound(err) ? reject(wrap(err, `cannot delete '${key}'`)) : resolve()))
      } catch (err) {
        reject(wrap(err, `cannot delete '${key}'`))
      }
    })
  }

  /** True when the store writes a batch at once, all or none (else {@link batch} writes one by one). */
  get atomicBatch(): boolean {
    return typeof this.store.batch === 'function'
  }

  /**
   * Many writes: one atomic batch where the store has one (the default store), else each write
   * on its own, all in parallel (kad-fs: not atomic, and slower).
   */
  async batch(ops: BatchOp[], options: { sync?: boolean } = {}): Promise<void> {
    if (ops.length === 0) return
    if (!this.binaryValues && ops.some((op) => op.type === 'put' && typeof op.value !== 'string')) {
      throw new StorageError('ERR_STORAGE_BAD_KEY', 'this store keeps string values only (binaryValues is false)')
    }
    if (typeof this.store.batch === 'function') {
      try {
        const encoded = this.encode === identity ? ops : ops.map((op): BatchOp => (op.type === 'put' ? { type: 'put', key: this.encode(op.key), value: op.value as string } : { type: 'del', key: this.encode(op.key) }))
        await this.store.batch(encoded, options)
      } catch (err) {
        throw wrap(err, 'batch write failed')
      }
      return
    }
    await Promise.all(ops.map((op) => (op.type === 'put' ? this.put(op.key, op.value as string) : this.del(op.key))))
  }

  /**
   * {@link batch} within the call, where the store can (see KadStore.batchNow): true once
   * written; false when it cannot (nothing written: use {@link batch}). @throws StorageError
   */
  batchNow(ops: BatchOp[], options: { sync?: boolean } = {}): boolean {
    const store = this.store
    if (typeof store.batchNow !== 'function' || this.encode !== identity) return false
    if (ops.length === 0) return true
    if (!this.binaryValues) for (const op of ops) if (op.type === 'put' && typeof op.value !== 'string') return false
    try {
      return store.batchNow(ops, options)
    } catch (err) {
      throw wrap(err, 'batch write failed')
    }
  }

  /**
   * Journals the keys under `prefix` where the store can (the default store, see
   * level-journal.ts): a batch of only those keys is then written at once, without a LevelDB
   * write each. Elsewhere nothing changes.
   */
  journal(prefix: string): void {
    const store = this.store as { journalKeys?: (prefix: string) => void }
    if (this.encode === identity && typeof store.journalKeys === 'function') store.journalKeys(prefix)
  }

  /**
   * A batch to fill as writes come and write later (the default store), or undefined: then use
   * {@link batch}. Ops are checked at `add()` (a bad one throws, adding nothing).
   */
  openBatch(): OpenBatch | undefined {
    if (typeof this.store.openBatch !== 'function' || this.encode !== identity) return undefined
    const inner = this.store.openBatch()
    if (!inner) return undefined
    return {
      add: (ops) => inner.add(ops),
      write: async (options) => {
        try {
          await inner.write(options)
        } catch (err) {
          throw wrap(err, 'batch write failed')
        }
      }
    }
  }

  /**
   * True when {@link batch} takes byte values and {@link rangeBinary} reads them: the default
   * store. Every other store (kad-fs, memory) keeps strings.
   */
  get binaryValues(): boolean {
    return this.store.binaryValues === true && typeof this.store.rangeBinary === 'function' && typeof this.store.batch === 'function' && this.encode === identity
  }

  /** {@link range} with values as bytes; only where {@link binaryValues} is true. */
  async rangeBinary(options: RangeOptions): Promise<BinaryEntry[]> {
    if (!this.binaryValues) throw new StorageError('ERR_STORAGE_UNAVAILABLE', 'this store cannot read values as bytes')
    try {
      return await (this.store as Required<Pick<KadStore, 'rangeBinary'>>).rangeBinary(options)
    } catch (err) {
      throw wrap(err, 'cannot read a range')
    }
  }

  /**
   * Entries with `gte <= key < lt`, in key order, at most `limit`. A store without `range` is
   * read in full and filtered (kad-fs: slow for big stores).
   */
  async range(options: RangeOptions): Promise<StoreEntry[]> {
    if (typeof this.store.range === 'function' && this.encode === identity) {
      try {
        return await this.store.range(options)
      } catch (err) {
        throw wrap(err, 'cannot read a range')
      }
    }
    const all = (await this.entries(commonPrefix(options.gte, options.lt))).filter((e) => e.key >= options.gte && e.key < options.lt)
    all.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    const limited = options.limit !== undefined && options.limit >= 0 ? all.slice(0, options.limit) : all
    return options.values === false ? limited.map((e) => ({ key: e.key, value: '' })) : limited
  }

  /** Synchronous read where the store allows it (ours, and kad-fs through its data directory). */
  getSync(key: string): string | null | undefined {
    if (typeof this.store.getSync === 'function') return this.store.getSync(this.encode(key))
    const datadir = (this.store as { datadir?: unknown }).datadir
    if (typeof datadir !== 'string') return undefined
    try {
      return fs.readFileSync(datadir + this.encode(key), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw wrap(err, `cannot read '${key}'`)
    }
  }

  /** True when the store is known, synchronously, to hold nothing (kad-fs: an empty or missing directory). */
  isEmptySync(): boolean {
    if (typeof this.store.isEmptySync === 'function') return this.store.isEmptySync()
    const datadir = (this.store as { datadir?: unknown }).datadir
    if (typeof datadir !== 'string') return false
    try {
      return fs.readdirSync(datadir).length === 0
    } catch {
      return false
    }
  }

  /** Every entry whose key starts with `prefix`, decoded; foreign file names are skipped. */
  async entries(prefix = ''): Promise<StoreEntry[]> {
    const out: StoreEntry[] = []
    try {
      // Events, not `for await`: kad-fs returns a readable-stream 2 stream, which is not async iterable.
      await new Promise<void>((resolve, reject) => {
        const stream = this.store.createReadStream()
        stream.on('data', (entry: StoreEntry) => {
          const key = this.decode(String(entry.key))
          if (key !== null && key.startsWith(prefix)) out.push({ key, value: String(entry.value) })
        })
        stream.once('error', reject)
        stream.once('end', resolve)
      })
    } catch (err) {
      throw wrap(err, 'cannot list the store')
    }
    return out
  }
}

const identity = (key: string): string => key

function commonPrefix(a: string, b: string): string {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return a.slice(0, i)
}

function wrap(err: unknown, what: string): StorageError {
  if (err instanceof StorageError) return err
  return new StorageError('ERR_STORAGE_UNAVAILABLE', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
}
