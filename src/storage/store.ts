/**
 * The storage contract: the kad-fs interface the seed README names (callbacks, string keys and
 * values, an object-mode read stream of `{key, value}`), plus optional lifecycle hooks.
 *
 * Any object with these four methods works as the `storage` option, the real `kad-fs` package
 * included. Our own stores (memory, LevelDB) also return promises when no callback is given.
 */
import type { Readable } from 'node:stream'
import { StorageError } from '../errors.js'

export type GetCallback = (err: Error | null | undefined, value?: string) => void
export type DoneCallback = (err?: Error | null) => void

/** A kad-fs compatible store. */
export interface KadStore {
  get(key: string, callback: GetCallback): void
  put(key: string, value: string, callback: DoneCallback): void
  del(key: string, callback: DoneCallback): void
  createReadStream(): Readable
  /** Optional: open the backend; rejects with a {@link StorageError} if it cannot be used. */
  open?(): Promise<void>
  /** Optional: release the backend (file handles, locks). */
  close?(): Promise<void>
  /**
   * Optional: read a key synchronously. `null` means missing, `undefined` means this store cannot
   * answer synchronously. Lets the identity be known right after `new Platform()`.
   */
  getSync?(key: string): string | null | undefined
  /**
   * Optional: true when the store holds nothing at all, known synchronously. Only then are a new
   * node's keys made (and shown) before `ready`; on any other store they could be a stranger's.
   */
  isEmptySync?(): boolean
  /** Optional: apply many writes at once, all or none (the default store has it). */
  batch?(ops: BatchOp[], options?: { sync?: boolean }): Promise<void>
  /**
   * Optional, with `batch()`: writes `ops` within the call, all or none, where the store can
   * (the memory store; the default store's journaled keys): true once written, false when it
   * cannot (nothing written: use `batch()`). Throws a {@link StorageError} when the write failed.
   * The ops are not kept past the call (a caller may reuse them). A batch per message in a
   * ping-pong then costs no promise.
   */
  batchNow?(ops: BatchOp[], options?: { sync?: boolean }): boolean
  /** Optional: read a key range in order without a full scan (the default store has it). */
  range?(options: RangeOptions): Promise<StoreEntry[]>
  /**
   * Optional: true when `batch()` also takes byte values ({@link BinaryPut}) and
   * `rangeBinary()` reads values as bytes (the default store). Bulk data (the outbox) then skips
   * a text encoding; every other store keeps to strings.
   */
  readonly binaryValues?: boolean
  /** Optional, with `binaryValues`: {@link range} with each value as the stored bytes. */
  rangeBinary?(options: RangeOptions): Promise<BinaryEntry[]>
  /**
   * Optional: a batch filled as writes come and written later, all or none, like `batch()`.
   * The store does its per-write work (encoding, copying) at `add()`, so a caller can fill the
   * next batch while the last one is written. Undefined when the store cannot give one now.
   */
  openBatch?(): OpenBatch | undefined
}

/** A batch being filled: see {@link KadStore.openBatch}. */
export interface OpenBatch {
  /** Adds a caller's writes, all or none: throws a StorageError (adding nothing) for a bad op. */
  add(ops: BatchOp[]): void
  /** Writes what was added, all or none (to the OS; `sync: true` flushes to the disk too). */
  write(options?: { sync?: boolean }): Promise<void>
}

/** One write of a batch. A {@link BinaryPut} only for a store whose `binaryValues` is true. */
export type BatchOp = { type: 'put'; key: string; value: string } | BinaryPut | { type: 'del'; key: string }

/** A put of bytes: stored as they are (no text encoding), read back with `rangeBinary()`. */
export interface BinaryPut {
  type: 'put'
  key: string
  value: Uint8Array
}

/** An entry of `rangeBinary()`. */
export interface BinaryEntry {
  key: string
  value: Buffer
}

/** A key range: `gte <= key < lt`, at most `limit` entries, values unless `values: false`. */
export interface RangeOptions {
  gte: string
  lt: string
  limit?: number
  values?: boolean
}

/** An entry of `createReadStream()`. */
export interface StoreEntry {
  key: string
  value: string
}

/** The error every store uses for a missing key: `code === 'ERR_STORAGE_NOT_FOUND'`. */
export function notFound(key: string): StorageError {
  return new StorageError('ERR_STORAGE_NOT_FOUND', `key not found: ${key}`)
}

/** True when `err` says "no such key", whichever store produced it. */
export function isNotFound(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false
  const e = err as { code?: unknown; notFound?: unknown; message?: unknown }
  return (
    e.code === 'ERR_STORAGE_NOT_FOUND' ||
    e.code === 'LEVEL_NOT_FOUND' ||
    e.code === 'ENOENT' ||
    e.notFound === true ||
    e.message === 'Not found' // kad-fs
  )
}

/** Validates a key given to one of our stores. */
export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new StorageError('ERR_STORAGE_BAD_KEY', 'a storage key must be a non-empty string')
  }
}

/** Validates a value given to one of our stores. */
export function checkValue(value: unknown): asserts value is string {
  if (typeof value !== 'string') throw new StorageError('ERR_STORAGE_BAD_KEY', 'a storage value must be a string')
}
