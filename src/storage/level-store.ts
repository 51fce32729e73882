/**
 * The default store: an embedded LevelDB (classic-level) in a data directory.
 *
 * Layout of `<dir>`:
 * - `db/`: the LevelDB database, every key but the file keys below;
 * - `identity`: the node's secret key, a file of its own with mode 0600. It is kept out of
 *   LevelDB so that it has owner-only permissions and can be read synchronously, which makes
 *   `platform.directory.identity.getSignId()` answer right after `new Platform()`.
 */
import fs from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import { Readable } from 'node:stream'
import { ClassicLevel } from 'classic-level'
import { StorageError } from '../errors.js'
import { checkKey, checkValue, notFound, type GetCallback, type DoneCallback, type KadStore, type StoreEntry } from './store.js'
import { settle } from './callbackify.js'

/** Keys stored as files of their own rather than in LevelDB. */
const FILE_KEYS = new Set(['identity'])

/** `$MM_PLATFORM_DATA`, else `~/.mm-platform`: the data directory when none is given. */
export function defaultDataDir(): string {
  return process.env.MM_PLATFORM_DATA || path.join(os.homedir(), '.mm-platform')
}

export interface LevelStoreOptions {
  /** Data directory; created if missing. Default: {@link defaultDataDir}. */
  dir?: string
}

export class LevelStore implements KadStore {
  /** The data directory. */
  readonly dir: string
  private readonly db: ClassicLevel<string, string>
  private opening: Promise<void> | undefined
  private closed = false

  constructor(options: LevelStoreOptions | string = {}) {
    const dir = typeof options === 'string' ? options : options.dir ?? defaultDataDir()
    this.dir = path.resolve(dir)
    this.db = new ClassicLevel<string, string>(path.join(this.dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  }

  /** Opens the database; rejects with ERR_STORAGE_LOCKED, _CORRUPT or _UNAVAILABLE. Idempotent. */
  open(): Promise<void> {
    this.opening ??= this.doOpen()
    return this.opening
  }

  private async doOpen(): Promise<void> {
    if (this.closed) throw new StorageError('ERR_STORAGE_UNAVAILABLE', `store at ${this.dir} is closed`)
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot create data directory ${this.dir}: ${(err as Error).message}`, { cause: err })
    }
    try {
      await this.db.open({ createIfMissing: true })
    } catch (err) {
      throw mapOpenError(err, this.dir)
    }
  }

  get(key: string): Promise<string>
  get(key: string, callback: GetCallback): void
  get(key: string, callback?: GetCallback): Promise<string> | void {
    return settle(this.getAsync(key), callback)
  }

  private async getAsync(key: string): Promise<string> {
    checkKey(key)
    if (FILE_KEYS.has(key)) {
      const value = this.getSync(key)
      if (value == null) throw notFound(key)
      return value
    }
    await this.open()
    let value: string | undefined
    try {
      value = await this.db.get(key)
    } catch (err) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot read '${key}' from ${this.dir}`, { cause: err })
    }
    if (value === undefined) throw notFound(key)
    return value
  }

  put(key: string, value: string): Promise<void>
  put(key: string, value: string, callback: DoneCallback): void
  put(key: string, value: string, callback?: DoneCallback): Promise<void> | void {
    return settle(this.putAsync(key, value), callback)
  }

  private async putAsync(key: string, value: string): Promise<void> {
    checkKey(key)
    checkValue(value)
    if (FILE_KEYS.has(key)) return this.writeFileKey(key, value)
    await this.open()
    try {
      await this.db.put(key, value)
    } catch (err) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot write '${key}' to ${this.dir}`, { cause: err })
    }
  }

  /** Many writes in one LevelDB batch (one fsync'd log append): the fast path for bulk data. */
  async batch(ops: Array<{ type: 'put'; key: string; value: string } | { type: 'del'; key: string }>): Promise<void> {
    for (const op of ops) {
      checkKey(op.key)
      if (FILE_KEYS.has(op.key)) throw new StorageError('ERR_STORAGE_BAD_KEY', `'${op.key}' cannot be written in a batch`)
      if (op.type === 'put') checkValue(op.value)
    }
    await this.open()
    try {
      await this.db.batch(ops)
    } catch (err) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `batch write to ${this.dir} failed`, { cause: err })
    }
  }

  del(key: string): Promise<void>
  del(key: string, callback: DoneCallback): void
  del(key: string, callback?: DoneCallback): Promise<void> | void {
    return settle(this.delAsync(key), callback)
  }

  private async delAsync(key: string): Promise<void> {
    checkKey(key)
    if (FILE_KEYS.has(key)) {
      fs.rmSync(path.join(this.dir, key), { force: true })
      return
    }
    await this.open()
    try {
      await this.db.del(key)
    } catch (err) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot delete '${key}' from ${this.dir}`, { cause: err })
    }
  }

  /** Every entry: the file keys first, then LevelDB in key order. */
  createReadStream(): Readable {
    const self = this
    return Readable.from(
      (async function* (): AsyncGenerator<StoreEntry> {
        for (const key of FILE_KEYS) {
          const value = self.getSync(key)
          if (value != null) yield { key, value }
        }
        await self.open()
        for await (const [key, value] of self.db.iterator()) yield { key, value: value as string }
      })()
    )
  }

  /** True while neither the database nor the identity file exists: a store never used. */
  isEmptySync(): boolean {
    return !fs.existsSync(path.join(this.dir, 'db')) && !fs.existsSync(path.join(this.dir, 'identity'))
  }

  /** Synchronous read of a file key; `undefined` for keys kept in LevelDB. */
  getSync(key: string): string | null | undefined {
    if (!FILE_KEYS.has(key)) return undefined
    try {
      return fs.readFileSync(path.join(this.dir, key), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot read ${path.join(this.dir, key)}: ${(err as Error).message}`, { cause: err })
    }
  }

  private writeFileKey(key: string, value: string): void {
    // Write, fsync, rename, fsync the directory: a crash leaves the old key or the new one, whole
    // and on disk (without the first fsync the rename may reach the disk before the data does,
    // leaving an empty identity file; without the second the rename itself may be lost).
    const file = path.join(this.dir, key)
    const tmp = `${file}.${process.pid}.tmp`
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
      const fd = fs.openSync(tmp, 'w', 0o600)
      try {
        fs.writeFileSync(fd, value)
        fs.fsyncSync(fd)
      } finally {
        fs.closeSync(fd)
      }
      fs.renameSync(tmp, file)
      syncDirectory(this.dir)
    } catch (err) {
      fs.rmSync(tmp, { force: true })
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot write ${file}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Closes LevelDB and releases its lock. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    if (this.opening) await this.opening.catch(() => {})
    if (this.db.status === 'open' || this.db.status === 'opening') await this.db.close()
  }
}

/** fsync of a directory, so a rename in it is durable; a no-op where directories cannot be opened (Windows). */
function syncDirectory(dir: string): void {
  let fd: number
  try {
    fd = fs.openSync(dir, 'r')
  } catch {
    return
  }
  try {
    fs.fsyncSync(fd)
  } catch {
    // Some file systems refuse fsync on a directory (EINVAL): the data itself is synced.
  } finally {
    fs.closeSync(fd)
  }
}

function mapOpenError(err: unknown, dir: string): StorageError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause
  const detail = cause?.message ?? (err as Error).message
  switch (cause?.code) {
    case 'LEVEL_LOCKED':
      return new StorageError('ERR_STORAGE_LOCKED', `data directory ${dir} is in use by another process (${detail})`, { cause: err })
    case 'LEVEL_CORRUPTION':
      return new StorageError('ERR_STORAGE_CORRUPT', `the database in ${dir} is corrupt (${detail})`, { cause: err })
    default:
      return new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot open the database in ${dir} (${detail})`, { cause: err })
  }
}
