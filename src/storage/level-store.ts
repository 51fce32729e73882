/**
 * The default store: an embedded LevelDB (classic-level) in a data directory.
 *
 * Layout of `<dir>`:
 * - `db/`: the LevelDB database, every key but the file keys below;
 * - `identity`: the node's secret key, a file of its own with mode 0600. It is kept out of
 *   LevelDB so that it has owner-only permissions and can be read synchronously, which makes
 *   `platform.directory.identity.getSignId()` answer right after `new Platform()`;
 * - `db-checked`: the table files an open found intact, so the next one reads only new files;
 * - `db-id`: the id of the database made for this directory (also kept inside it, under a
 *   reserved key). A `db-id` whose database is missing, empty or another one means the database
 *   was lost: open fails with ERR_STORAGE_LOST instead of starting on a quietly empty store.
 *
 * Never forgets silently: before LevelDB opens, every log and table file is checked (see
 * leveldb-check.ts; LevelDB would otherwise drop damaged log records without a word and delete
 * the log). Damage fails the open with ERR_STORAGE_CORRUPT and leaves the files as they were;
 * `repair: true` runs LevelDB's repair instead and logs a warning that says what was dropped.
 *
 * Over 400 lines, on purpose: the kad-fs surface (get, put, del, createReadStream, batch, range)
 * and one open lifecycle (file check, lost-database detection, repair) share the store's state.
 * The file checks themselves are in leveldb-check.ts, durable file writes in durable-file.ts.
 *
 * The keys of one prefix can be journaled (`journalKeys`, level-journal.ts): their batches are
 * appended to a file beside the database with one synchronous write instead of a LevelDB write
 * on the threadpool, and reach LevelDB every few seconds; reads of them see the journal.
 */
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import os from 'node:os'
import { Readable } from 'node:stream'
// libsodium's CSPRNG, not node:crypto's: loading node:crypto costs a fresh process ~6 ms.
import { randomBytes } from '../crypto/sodium.js'
import type { ClassicLevel } from 'classic-level'
import { StorageError } from '../errors.js'
import { silentLogger, type Logger } from '../logger.js'
import { checkKey, checkValue, notFound, type BatchOp, type GetCallback, type DoneCallback, type KadStore, type RangeOptions, type StoreEntry, type BinaryEntry, type OpenBatch } from './store.js'
import { settle } from './callbackify.js'
import { writeFileDurably } from './durable-file.js'
import { LevelJournal, readJournal } from './level-journal.js'

/** Keys stored as files of their own rather than in LevelDB. */
const FILE_KEYS = new Set(['identity'])
/** Where the database's id is kept inside LevelDB; hidden from reads, refused for writes. */
const DB_ID_KEY = '\u0000db-id'
/** Per-operation option of a value stored as bytes (the database's default is UTF-8 text). */
const BYTES = { valueEncoding: 'buffer' } as const
const EMPTY = Buffer.alloc(0)
/** The file beside `db/` that holds the same id. */
const DB_ID_FILE = 'db-id'
/** The file beside `db/` that lists the tables found intact (name -> size:mtime). */
const CHECKED_FILE = 'db-checked'

/** The id a database was made with, and when. */
interface DbId {
  id: string
  createdAt: string
}

/** What a repair did, kept on {@link LevelStore.repairs} and logged as a warning. */
export interface RepairRecord {
  /** Why: `corrupt` (damaged files), `lost` (database gone or replaced). */
  reason: 'corrupt' | 'lost'
  /** What was lost, in words. */
  lost: string
}

/** `$MM_PLATFORM_DATA`, else `~/.mm-platform`: the data directory when none is given. */
export function defaultDataDir(): string {
  return process.env.MM_PLATFORM_DATA || path.join(os.homedir(), '.mm-platform')
}

export interface LevelStoreOptions {
  /** Data directory; created if missing. Default: {@link defaultDataDir}. */
  dir?: string
  /**
   * On damaged files or a lost database, repair (LevelDB's repair, or a new empty database) and
   * log a warning saying what was lost, instead of failing with ERR_STORAGE_CORRUPT / _LOST.
   * Default false: the store refuses to open, and the files stay as they are.
   */
  repair?: boolean
  /** Where repair warnings go (pino-compatible). Default: silent. */
  logger?: Logger
  /**
   * LevelDB's memtable size, bytes (default {@link DEFAULT_WRITE_BUFFER_BYTES}). Bigger lets
   * bulk writes (the outbox) go on while a full memtable is written out; costs up to twice this
   * in memory.
   */
  writeBufferBytes?: number
}

/** LevelDB's default is 4 MiB; 16 MiB measured ~1.5x the outbox's append rate here. */
export const DEFAULT_WRITE_BUFFER_BYTES = 16 * 1024 * 1024

export class LevelStore implements KadStore {
  /** The data directory. */
  readonly dir: string
  /** Made only once the files are checked: a ClassicLevel opens itself as soon as it exists. */
  private level: ClassicLevel<string, string> | undefined
  private opening: Promise<void> | undefined
  private closed = false
  private readonly repair: boolean
  private readonly logger: Logger
  private readonly writeBufferBytes: number
  /** Cleared LevelDB batches kept for the next openBatch() (see newBatch). */
  private readonly spareBatches: NativeBatch[] = []
  /** Repairs made by open() (with the `repair` option); empty when none was needed. */
  readonly repairs: RepairRecord[] = []
  /** The journal of {@link journalKeys}, once open; its prefix, and the next journal file's number. */
  private journal: LevelJournal | undefined
  private journalPrefix: string | undefined
  private journalGen = 0

  constructor(options: LevelStoreOptions | string = {}) {
    const opts = typeof options === 'string' ? { dir: options } : options
    this.dir = path.resolve(opts.dir ?? defaultDataDir())
    this.repair = opts.repair === true
    this.logger = opts.logger ?? silentLogger
    this.writeBufferBytes = opts.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES
  }

  /** The open database (callers await open() first). */
  private get db(): ClassicLevel<string, string> {
    if (!this.level) throw new StorageError('ERR_STORAGE_UNAVAILABLE', `store at ${this.dir} is not open`)
    return this.level
  }

  private get dbDir(): string {
    return path.join(this.dir, 'db')
  }

  /** Opens the database; rejects with ERR_STORAGE_LOCKED, _CORRUPT or _UNAVAILABLE. Idempotent. */
  open(): Promise<void> {
    this.opening ??= this.doOpen()
    return this.opening
  }

  private async doOpen(): Promise<void> {
    // LevelDB's binding and the file check load on first open, not on import: a platform on
    // another store (MemoryStore, kad-fs) never pays for them (~50 ms of a cold start here).
    const { ClassicLevel } = await loadClassicLevel()
    if (this.closed) throw new StorageError('ERR_STORAGE_UNAVAILABLE', `store at ${this.dir} is closed`)
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot create data directory ${this.dir}: ${(err as Error).message}`, { cause: err })
    }
    const dbId = this.readDbId()
    const present = fs.existsSync(path.join(this.dbDir, 'CURRENT'))
    if (!present && dbId) {
      this.lost(`its database (${this.dbDir}, made ${dbId.createdAt}) is gone`)
    }
    if (present) await this.checkFiles()
    if (this.pendingRepair !== undefined) await this.repairFiles(this.pendingRepair)
    if (this.closed) throw new StorageError('ERR_STORAGE_UNAVAILABLE', `store at ${this.dir} is closed`)
    this.level = new ClassicLevel<string, string>(this.dbDir, { keyEncoding: 'utf8', valueEncoding: 'utf8', writeBufferSize: this.writeBufferBytes })
    try {
      await this.db.open({ createIfMissing: true })
    } catch (err) {
      const mapped = mapOpenError(err, this.dir)
      if (mapped.code !== 'ERR_STORAGE_CORRUPT' || !this.repair) throw mapped
      await this.level.close().catch(() => {})
      await this.repairFiles(mapped.message)
      this.level = new ClassicLevel<string, string>(this.dbDir, { keyEncoding: 'utf8', valueEncoding: 'utf8', writeBufferSize: this.writeBufferBytes })
      try {
        await this.db.open({ createIfMissing: true })
      } catch (again) {
        throw mapOpenError(again, this.dir)
      }
    }
    await this.checkDbId(dbId, present)
    await this.replayJournal()
    if (this.checked) {
      try {
        writeFileDurably(this.dir, path.join(this.dir, CHECKED_FILE), JSON.stringify(this.checked) + '\n')
      } catch (err) {
        this.logger.warn({ err }, `cannot record the checked tables in ${this.dir}; the next open checks them all again`)
      }
    }
  }

  /** Writes what journal files a crash left into LevelDB, then deletes them. */
  private async replayJournal(): Promise<void> {
    let left: ReturnType<typeof readJournal>
    try {
      left = readJournal(this.dir, (message) => this.logger.warn({ dir: this.dir }, message))
    } catch (err) {
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot read the journal in ${this.dir}: ${(err as Error).message}`, { cause: err })
    }
    this.journalGen = left.nextGen
    if (left.ops.length) await this.levelBatch(left.ops, true)
    for (const file of left.files) fs.rmSync(file, { force: true })
    if (this.journalPrefix !== undefined) this.startJournal(this.journalPrefix)
  }

  /**
   * Journals the batches whose every key starts with `prefix` (text values), see
   * level-journal.ts: done once in the OS, without a LevelDB write each. One prefix per store.
   */
  journalKeys(prefix: string): void {
    if (this.journalPrefix !== undefined) return
    this.journalPrefix = prefix
    if (this.level?.status === 'open') this.startJournal(prefix)
  }

  private startJournal(prefix: string): void {
    this.journal = new LevelJournal(this.dir, prefix, this.journalGen, (ops) => this.levelBatch(ops, false))
  }

  /** Reads `db-id`; null when absent. A damaged one is damage like any other. */
  private readDbId(): DbId | null {
    let text: string
    try {
      text = fs.readFileSync(path.join(this.dir, DB_ID_FILE), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw new StorageError('ERR_STORAGE_UNAVAILABLE', `cannot read ${path.join(this.dir, DB_ID_FILE)}: ${(err as Error).message}`, { cause: err })
    }
    const parsed = parseDbId(text)
    if (parsed) return parsed
    if (!this.repair) throw new StorageError('ERR_STORAGE_CORRUPT', `${path.join(this.dir, DB_ID_FILE)} is damaged; open with repair: true to check the database and write it anew`)
    this.logger.warn({ dir: this.dir }, `${DB_ID_FILE} is damaged; it will be written anew (nothing else lost)`)
    return null
  }

  /** The database's id must be the one the directory recorded: else it was lost or replaced. */
  private async checkDbId(dbId: DbId | null, present: boolean): Promise<void> {
    let stored: DbId | null = null
    const raw = await this.db.get(DB_ID_KEY).catch((err: unknown) => {
      throw mapIoError(err, `cannot read the database id from ${this.dir}`)
    })
    if (raw !== undefined) stored = parseDbId(raw)
    const repaired = this.repairs.some((r) => r.reason === 'corrupt')
    if (dbId && present && stored?.id !== dbId.id && !repaired) {
      this.lost(
        stored
          ? `its database is not the one it was made with (${dbId.id} made ${dbId.createdAt}, found ${stored.id} made ${stored.createdAt})`
          : `its database (made ${dbId.createdAt}) was emptied or replaced`
      )
      stored = null
    }
    if (stored === null) {
      stored = { id: randomBytes(16).toString('hex'), createdAt: new Date().toISOString() }
      await this.db.put(DB_ID_KEY, JSON.stringify(stored)).catch((err: unknown) => {
        throw mapIoError(err, `cannot write the database id to ${this.dir}`)
      })
    }
    if (dbId?.id !== stored.id) writeFileDurably(this.dir, path.join(this.dir, DB_ID_FILE), JSON.stringify(stored) + '\n')
  }

  /** A lost database: fail, or (repair) log what is lost and go on with an empty one. */
  private lost(what: string): void {
    const lost = 'every stored circle, outbox message, seen message id and cached nodeInfo it held'
    if (!this.repair) {
      throw new StorageError(
        'ERR_STORAGE_LOST',
        `data directory ${this.dir}: ${what}; ${lost} would be gone. Restore db/ from a backup, or open with repair: true to start with an empty database`
      )
    }
    this.repairs.push({ reason: 'lost', lost: `${what}: ${lost}` })
    this.logger.warn({ dir: this.dir }, `storage repaired: ${what}; lost ${lost}; starting with an empty database`)
  }

  /** Checks the log and table files before LevelDB can drop damaged records unseen. */
  private async checkFiles(): Promise<void> {
    const { checkLevelDir, describeDamage } = await import('./leveldb-check.js')
    const report = checkLevelDir(this.dbDir, this.readChecked())
    if (report.damage.length === 0) {
      this.checked = report.intactTables
      return
    }
    const detail = describeDamage(report.damage)
    if (!this.repair) {
      throw new StorageError(
        'ERR_STORAGE_CORRUPT',
        `the database in ${this.dir} is damaged (${detail}); the records there would be lost. The files are untouched: restore them from a backup, or open with repair: true to keep what can be read`
      )
    }
    this.pendingRepair = detail
  }

  private pendingRepair: string | undefined
  /** Tables found intact by this open's check, saved to CHECKED_FILE once the open succeeds. */
  private checked: Record<string, string> | undefined

  /** The tables an earlier open found intact (a damaged or missing record only costs a full check). */
  private readChecked(): Record<string, string> {
    try {
      const value = JSON.parse(fs.readFileSync(path.join(this.dir, CHECKED_FILE), 'utf8')) as unknown
      if (!value || typeof value !== 'object' || Array.isArray(value)) return {}
      const out: Record<string, string> = {}
      for (const [k, v] of Object.entries(value)) if (/^\d+\.(ldb|sst)$/.test(k) && typeof v === 'string') out[k] = v
      return out
    } catch {
      return {}
    }
  }

  private async repairFiles(detail: string): Promise<void> {
    const { ClassicLevel } = await loadClassicLevel()
    try {
      await ClassicLevel.repair(this.dbDir)
    } catch (err) {
      throw mapOpenError(err, this.dir)
    }
    const lost = `the records in the damaged parts (${detail}): stored circles, outbox messages, seen message ids or cached nodeInfo written there`
    this.repairs.push({ reason: 'corrupt', lost })
    this.logger.warn({ dir: this.dir }, `storage repaired: lost ${lost}`)
  }

  get(key: string): Promise<string>
  get(key: string, callback: GetCallback): void
  get(key: string, callback?: GetCallback): Promise<string> | void {
    return settle(this.getAsync(key), callback)
  }

  private async getAsync(key: string): Promise<string> {
    checkOwnKey(key)
    if (FILE_KEYS.has(key)) {
      const value = this.getSync(key)
      if (value == null) throw notFound(key)
      return value
    }
    await this.open()
    const journaled = this.journal?.pending.get(key)
    if (journaled !== undefined) {
      if (journaled === null) throw notFound(key)
      return journaled
    }
    let value: string | undefined
    try {
      value = await this.db.get(key)
    } catch (err) {
      throw mapIoError(err, `cannot read '${key}' from ${this.dir}`)
    }
    if (value === undefined) throw notFound(key)
    return value
  }

  put(key: string, value: string | Uint8Array): Promise<void>
  put(key: string, value: string | Uint8Array, callback: DoneCallback): void
  put(key: string, value: string | Uint8Array, callback?: DoneCallback): Promise<void> | void {
    return settle(this.putAsync(key, value), callback)
  }

  /** A string is stored as UTF-8; bytes (beyond the kad-fs contract) as they are, see {@link binaryValues}. */
  private async putAsync(key: string, value: string | Uint8Array): Promise<void> {
    checkOwnKey(key)
    if (!(value instanceof Uint8Array)) checkValue(value)
    if (FILE_KEYS.has(key)) {
      if (typeof value !== 'string') throw new StorageError('ERR_STORAGE_BAD_KEY', `'${key}' holds text`)
      return this.writeFileKey(key, value)
    }
    await this.open()
    await this.beforeDirect(key)
    try {
      if (typeof value === 'string') await this.db.put(key, value)
      else await this.db.put(key, value as unknown as string, BYTES)
    } catch (err) {
      throw mapIoError(err, `cannot write '${key}' to ${this.dir}`)
    }
  }

  /** batch() takes byte values too, and rangeBinary() reads them (see KadStore.binaryValues). */
  readonly binaryValues = true

  /**
   * Many writes in one LevelDB batch, applied all or none: one log append, the fast path for
   * bulk data. Written to the OS before it resolves (survives a crash of the process); with
   * `sync: true` also flushed to the disk (survives a power loss; far slower).
   */
  async batch(ops: BatchOp[], options: { sync?: boolean } = {}): Promise<void> {
    if (this.journalNow(ops, options)) return
    const journal = this.journal
    if (journal?.pending.size && ops.some((op) => op.key.startsWith(journal.prefix))) await journal.checkpoint()
    return this.levelBatch(ops, options.sync === true)
  }

  /**
   * {@link KadStore.batchNow}: a batch of journaled keys only is written within the call (one
   * write() to the journal); any other is not (false: use batch()).
   */
  batchNow(ops: BatchOp[], options: { sync?: boolean } = {}): boolean {
    return this.journalNow(ops, options)
  }

  private journalNow(ops: BatchOp[], options: { sync?: boolean }): boolean {
    const journal = this.journal
    // Not a `sync` batch: its flush to the disk would block the event loop here (milliseconds);
    // LevelDB makes it on its threadpool (the journal's are moved there first, below).
    if (journal && !this.closed && ops.length && options.sync !== true && journal.takes(ops)) {
      checkOps(ops)
      journal.append(ops)
      return true
    }
    return false
  }

  /** A direct write of a journaled key waits until the journal's are in LevelDB (else a checkpoint would undo it). */
  private async beforeDirect(key: string): Promise<void> {
    if (this.journal?.pending.size && key.startsWith(this.journal.prefix)) await this.journal.checkpoint()
  }

  private async levelBatch(ops: BatchOp[], sync: boolean): Promise<void> {
    const options = { sync }
    const chained = this.newBatch() ?? (await this.open(), this.newBatch())
    if (!chained) throw new StorageError('ERR_STORAGE_UNAVAILABLE', `store at ${this.dir} is closed`)
    chained.add(ops)
    await chained.write(options)
  }

  /**
   * A batch filled op by op (the group commit fills the next while the last is written); undefined
   * until the store is open. Each op is checked and copied into LevelDB's batch at `add()`.
   */
  openBatch(): OpenBatch | undefined {
    return this.newBatch()
  }

  private newBatch(): OpenBatch | undefined {
    const level = this.level
    if (level?.status !== 'open') return undefined
    // LevelDB's batch objects are reused (cleared after each write) instead of one per batch:
    // a used one keeps its ~1-2 MB until V8 collects its wrapper, which it is not told about, so
    // with few JS allocations (byte records) a filling process grew past 280 MiB (measured).
    // Reuse goes through classic-level's own (underscore) batch methods: the public write()
    // closes the batch for good. Our checks replace abstract-level's; no hooks or events are used.
    const chained = this.spareBatches.pop() ?? (level.batch() as unknown as NativeBatch)
    const dir = this.dir
    const spare = this.spareBatches
    return {
      add(ops: BatchOp[]): void {
        checkOps(ops)
        // The binding takes strings (stored as UTF-8) and bytes as they are.
        for (const op of ops) {
          if (op.type === 'del') chained._del(op.key)
          else chained._put(op.key, op.value)
        }
      },
      async write(options: { sync?: boolean } = {}): Promise<void> {
        try {
          // Checked here: the binding's write has no status check of its own.
          if (level.status !== 'open') throw new StorageError('ERR_STORAGE_UNAVAILABLE', `store at ${dir} is closed`)
          await chained._write({ sync: options.sync === true })
        } catch (err) {
          throw mapIoError(err, `batch write to ${dir} failed`)
        } finally {
          chained._clear()
          if (spare.length < 2) spare.push(chained)
        }
      }
    }
  }

  del(key: string): Promise<void>
  del(key: string, callback: DoneCallback): void
  del(key: string, callback?: DoneCallback): Promise<void> | void {
    return settle(this.delAsync(key), callback)
  }

  private async delAsync(key: string): Promise<void> {
    checkOwnKey(key)
    if (FILE_KEYS.has(key)) {
      fs.rmSync(path.join(this.dir, key), { force: true })
      return
    }
    await this.open()
    await this.beforeDirect(key)
    try {
      await this.db.del(key)
    } catch (err) {
      throw mapIoError(err, `cannot delete '${key}' from ${this.dir}`)
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
        if (self.journal?.pending.size) await self.journal.checkpoint()
        try {
          for await (const [key, value] of self.db.iterator()) if (key !== DB_ID_KEY) yield { key, value: value as string }
        } catch (err) {
          throw mapIoError(err, `cannot list ${self.dir}`)
        }
      })()
    )
  }

  /** True while neither the database nor the identity file exists: a store never used. */
  isEmptySync(): boolean {
    return !fs.existsSync(path.join(this.dir, 'db')) && !fs.existsSync(path.join(this.dir, 'identity'))
  }

  /**
   * Entries with `gte <= key < lt` in key order, at most `limit` (LevelDB keys only; file keys
   * never). With `keys: false` values are '' (cheaper when only keys matter).
   */
  async range(options: RangeOptions): Promise<StoreEntry[]> {
    return this.readRange(options, false) as Promise<StoreEntry[]>
  }

  /** {@link range} with each value as the stored bytes (values written by batch() as bytes, or text as UTF-8). */
  async rangeBinary(options: RangeOptions): Promise<BinaryEntry[]> {
    return this.readRange(options, true) as Promise<BinaryEntry[]>
  }

  private async readRange(options: RangeOptions, bytes: boolean): Promise<Array<StoreEntry | BinaryEntry>> {
    await this.open()
    if (this.journal?.overlaps(options.gte, options.lt)) await this.journal.checkpoint()
    const out: Array<StoreEntry | BinaryEntry> = []
    const values = options.values !== false
    const none = bytes ? EMPTY : ''
    try {
      const it = this.db.iterator({ gte: options.gte, lt: options.lt, limit: options.limit ?? -1, values, valueEncoding: bytes ? 'buffer' : 'utf8' })
      try {
        for (;;) {
          const batch = await it.nextv(1000)
          if (batch.length === 0) break
          for (const [key, value] of batch) if (key !== DB_ID_KEY) out.push({ key, value: values ? (value as never) : none } as StoreEntry)
        }
      } finally {
        await it.close()
      }
    } catch (err) {
      throw mapIoError(err, `cannot read a range of ${this.dir}`)
    }
    return out
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
    writeFileDurably(this.dir, path.join(this.dir, key), value)
  }

  /** Closes LevelDB and releases its lock. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    if (this.opening) await this.opening.catch(() => {})
    await this.journal?.close()
    if (this.level && (this.level.status === 'open' || this.level.status === 'opening')) await this.level.close()
  }
}

/** classic-level's chained batch, by the methods it implements for abstract-level. */
interface NativeBatch {
  _put(key: string, value: string | Uint8Array): void
  _del(key: string): void
  _write(options: { sync: boolean }): Promise<void>
  _clear(): void
}

let classicLevel: Promise<typeof import('classic-level')> | undefined
/**
 * classic-level is CommonJS: require() loads it for ~5 ms less CPU than import() (18 against 23
 * ms in a fresh process here; an ESM import runs Node's export scanner over each of its 34
 * files first). The CommonJS build defines import.meta.url as __filename (scripts/build.mjs).
 */
function loadClassicLevel(): Promise<typeof import('classic-level')> {
  classicLevel ??= new Promise((resolve) => resolve(createRequire(import.meta.url)('classic-level') as typeof import('classic-level')))
  return classicLevel
}

function parseDbId(text: string): DbId | null {
  try {
    const v = JSON.parse(text) as Partial<DbId>
    return typeof v.id === 'string' && typeof v.createdAt === 'string' ? { id: v.id, createdAt: v.createdAt } : null
  } catch {
    return null
  }
}

/** A failed read or write: ERR_STORAGE_CORRUPT when LevelDB found damage, else _UNAVAILABLE. */
function mapIoError(err: unknown, what: string): StorageError {
  if (err instanceof StorageError) return err
  const e = err as { code?: string; cause?: { code?: string }; message?: string }
  const corrupt = e.code === 'LEVEL_CORRUPTION' || e.cause?.code === 'LEVEL_CORRUPTION'
  return new StorageError(corrupt ? 'ERR_STORAGE_CORRUPT' : 'ERR_STORAGE_UNAVAILABLE', `${what}: ${e.message ?? String(err)}`, { cause: err })
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

/** Checks a batch's ops as abstract-level would, and that none is a file key. */
function checkOps(ops: BatchOp[]): void {
  for (const op of ops) {
    checkOwnKey(op.key)
    if (FILE_KEYS.has(op.key)) throw new StorageError('ERR_STORAGE_BAD_KEY', `'${op.key}' cannot be written in a batch`)
    if (op.type === 'put' && !(op.value instanceof Uint8Array)) checkValue(op.value)
  }
}

/** A key a caller may use: any store key but the reserved database id. */
function checkOwnKey(key: unknown): asserts key is string {
  checkKey(key)
  if (key === DB_ID_KEY) throw new StorageError('ERR_STORAGE_BAD_KEY', 'that key is reserved by the store')
}
