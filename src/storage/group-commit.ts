/**
 * Group commit: many callers' writes go to storage as one batch, so durability costs one log
 * append per batch instead of one per write. Writes queued in one turn of the event loop form a
 * batch; while a batch is being written, new writes wait and form the next one (the batch size
 * follows the load). Each `write()` resolves only once the batch that holds it is written, or
 * rejects with that batch's error; an `add()` (a writer with many small writes, the outbox)
 * hears the same through its tag in afterBatch, with no promise at all.
 *
 * States: idle (nothing queued) -> scheduled (a flush set for the next turn) -> writing (one batch
 * in flight; writes queue behind it) -> idle, or writing the next batch at once when writes queued
 * meanwhile (handed to storage before the last batch's callers are told, so the store's writer
 * does not wait for them). With a store that offers an open batch (the default store), writes are
 * encoded into it as they come, while the batch before is being written.
 */
import { StateError } from '../errors.js'
import type { BatchOp, OpenBatch } from './store.js'
import type { PlatformStorage } from './platform-storage.js'

/** Most ops in one batch; more wait for the next (bounds one LevelDB write). */
export const DEFAULT_MAX_BATCH_OPS = 4096

/** One batch being filled or written: its callers share one promise (no promise per write). */
interface Pending {
  /** The store's open batch, filled as writes come (the default store); else `ops`. */
  batch: OpenBatch | undefined
  ops: BatchOp[]
  /** Ops in this batch (in `batch` or `ops`). */
  count: number
  tags: unknown[]
  /** Made when a caller asks for it (write(), not add()): no promise for a batch nobody awaits. */
  promise: Promise<void> | undefined
  resolve: (() => void) | undefined
  reject: ((err: Error) => void) | undefined
}

export interface GroupCommitOptions {
  /** Flush to the disk too (survives a power loss; far slower). Default false: to the OS. */
  sync?: boolean
  maxBatchOps?: number
  /**
   * Extra ops for each batch, asked for as it is cut, given the tags of the writes in it (e.g.
   * counters or a high-water mark written once per batch instead of once per write).
   */
  beforeBatch?: (tags: unknown[]) => BatchOp[]
  /** Told when a batch is written (`ok`) or failed (`err`), with the tags of its writes. */
  afterBatch?: (tags: unknown[], ok: boolean, err?: Error) => void
  /**
   * Told (synchronously, inside write()) of a write refused before it joined a batch: after
   * close(), or ops the store refused. Its tag is in no batch, so afterBatch never sees it.
   * `err` is what write() rejects with.
   */
  refused?: (tag: unknown, err: Error) => void
}

export class GroupCommit {
  /** Batches not yet written, oldest first; only the last one takes new writes. */
  private readonly queue: Pending[] = []
  private state: 'idle' | 'scheduled' | 'writing' = 'idle'
  private closed = false
  private readonly maxBatchOps: number
  private idle: Promise<void> = Promise.resolve()
  private markIdle: (() => void) | undefined
  /** Batches written so far (stats, tests). */
  batches = 0

  constructor(
    private readonly storage: PlatformStorage,
    private readonly options: GroupCommitOptions = {}
  ) {
    this.maxBatchOps = options.maxBatchOps ?? DEFAULT_MAX_BATCH_OPS
  }

  /**
   * Queues writes for the next batch; resolves once they are written. The callers of one batch
   * get the same promise. A caller's ops are never split across two batches. Byte values are
   * copied before write() returns: the caller may reuse their buffers at once.
   * @throws StateError (rejects) after close().
   */
  write(ops: BatchOp[], tag?: unknown): Promise<void> {
    const open = this.enqueue(ops, tag)
    if (open instanceof Error) return Promise.reject(open)
    return (open.promise ??= promiseOf(open))
  }

  /**
   * Like {@link write}, without a promise: the writer hears of its write through its tag only
   * (afterBatch, or refused at once). Many small writes then cost no promise each.
   */
  add(ops: BatchOp[], tag: unknown): void {
    this.enqueue(ops, tag)
  }

  private enqueue(ops: BatchOp[], tag: unknown): Pending | Error {
    if (this.closed) {
      const err = new StateError('ERR_CLOSED', 'storage writes are closed')
      this.options.refused?.(tag, err)
      return err
    }
    let open = this.queue[this.queue.length - 1]
    // The batch being written is never the open one: a new batch starts behind it.
    if (!open || (this.state === 'writing' && this.queue.length === 1) || (open.count > 0 && open.count + ops.length > this.maxBatchOps)) {
      open = newPending(this.storage.openBatch())
      this.queue.push(open)
    }
    if (open.batch) {
      // Encoded and copied now, while the batch before this one is being written.
      try {
        open.batch.add(ops)
      } catch (thrown) {
        const err = thrown instanceof Error ? thrown : new Error(String(thrown))
        this.options.refused?.(tag, err)
        return err
      }
    } else {
      // Kept until the batch is cut: byte values are copied, so a caller may reuse its buffers.
      for (const op of ops) open.ops.push(op.type === 'put' && typeof op.value !== 'string' ? { type: 'put', key: op.key, value: Buffer.from(op.value) } : op)
    }
    open.count += ops.length
    open.tags.push(tag)
    if (this.state === 'idle') this.schedule()
    return open
  }

  /** Ops queued and not yet in a batch being written. */
  get queued(): number {
    let n = 0
    for (let i = this.state === 'writing' ? 1 : 0; i < this.queue.length; i++) n += (this.queue[i] as Pending).count
    return n
  }

  private schedule(): void {
    this.idle = new Promise((resolve) => (this.markIdle = resolve))
    this.state = 'scheduled'
    setImmediate(() => void this.flush())
  }

  /** Writes the oldest batch; the next one is handed to storage before this one's callers run. */
  private async flush(): Promise<void> {
    this.state = 'writing'
    const batch = this.queue[0] as Pending
    const { ops, tags } = batch
    let failure: Error | undefined
    try {
      const extra = this.options.beforeBatch?.(tags)
      if (batch.batch) {
        if (extra) batch.batch.add(extra)
        await batch.batch.write({ sync: this.options.sync })
      } else {
        if (extra) for (const op of extra) ops.push(op)
        await this.storage.batch(ops, { sync: this.options.sync })
      }
      this.batches++
      this.options.afterBatch?.(tags, true)
    } catch (err) {
      failure = err as Error
      this.options.afterBatch?.(tags, false, failure)
    }
    this.queue.shift()
    // Storage gets the next batch first: it writes while this batch's callers run.
    if (this.queue.length > 0) void this.flush()
    else {
      this.state = 'idle'
      this.markIdle?.()
    }
    if (failure) batch.reject?.(failure)
    else batch.resolve?.()
  }

  /** Resolves when every write queued so far is written (or failed). */
  drain(): Promise<void> {
    return this.state === 'idle' ? Promise.resolve() : this.idle
  }

  /** Writes what is queued, then refuses new writes. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    await this.drain()
  }
}

function newPending(batch: OpenBatch | undefined): Pending {
  return { batch, ops: [], count: 0, tags: [], promise: undefined, resolve: undefined, reject: undefined }
}

function promiseOf(p: Pending): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    p.resolve = resolve
    p.reject = reject
  })
}
