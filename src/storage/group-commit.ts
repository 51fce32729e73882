/**
 * Group commit: many callers' writes go to storage as one batch, so durability costs one log
 * append per batch instead of one per write. Writes queued in one turn of the event loop form a
 * batch; while a batch is being written, new writes wait and form the next one (the batch size
 * follows the load). Each `write()` resolves only once the batch that holds it is written, or
 * rejects with that batch's error.
 *
 * States: idle (nothing queued) -> scheduled (a flush set for the next turn) -> writing (one batch
 * in flight; writes queue behind it) -> idle, or scheduled again when writes queued meanwhile.
 */
import { StateError } from '../errors.js'
import type { BatchOp } from './store.js'
import type { PlatformStorage } from './platform-storage.js'

/** Most ops in one batch; more wait for the next (bounds one LevelDB write). */
export const DEFAULT_MAX_BATCH_OPS = 4096

interface Waiter {
  resolve: () => void
  reject: (err: Error) => void
  tag: unknown
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
  /** Told when a batch is written (`ok`) or failed, with the tags of its writes. */
  afterBatch?: (tags: unknown[], ok: boolean) => void
}

export class GroupCommit {
  private ops: BatchOp[] = []
  private waiters: Waiter[] = []
  /** Op count of each waiting caller, in order: batches take whole callers. */
  private readonly counts: number[] = []
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
   * Queues writes for the next batch; resolves once they are written.
   * @throws StateError (rejects) after close().
   */
  write(ops: BatchOp[], tag?: unknown): Promise<void> {
    if (this.closed) return Promise.reject(new StateError('ERR_CLOSED', 'storage writes are closed'))
    return new Promise<void>((resolve, reject) => {
      for (const op of ops) this.ops.push(op)
      this.counts.push(ops.length)
      this.waiters.push({ resolve, reject, tag })
      if (this.state === 'idle') this.schedule()
    })
  }

  /** Ops queued and not yet in a batch being written. */
  get queued(): number {
    return this.ops.length
  }

  private schedule(): void {
    if (this.state === 'idle') {
      this.idle = new Promise((resolve) => (this.markIdle = resolve))
    }
    this.state = 'scheduled'
    setImmediate(() => void this.flush())
  }

  private async flush(): Promise<void> {
    this.state = 'writing'
    // Whole callers only: a caller's ops are never split across two batches.
    let opCount = 0
    let waiterCount = 0
    const perWaiter = this.counts
    while (waiterCount < this.waiters.length && (waiterCount === 0 || opCount + (perWaiter[waiterCount] ?? 0) <= this.maxBatchOps)) {
      opCount += perWaiter[waiterCount] ?? 0
      waiterCount++
    }
    const ops = this.ops.splice(0, opCount)
    const waiters = this.waiters.splice(0, waiterCount)
    perWaiter.splice(0, waiterCount)
    const tags = this.options.beforeBatch || this.options.afterBatch ? waiters.map((w) => w.tag) : []
    try {
      const extra = this.options.beforeBatch?.(tags)
      if (extra) for (const op of extra) ops.push(op)
      await this.storage.batch(ops, { sync: this.options.sync })
      this.batches++
      this.options.afterBatch?.(tags, true)
      for (const w of waiters) w.resolve()
    } catch (err) {
      this.options.afterBatch?.(tags, false)
      for (const w of waiters) w.reject(err as Error)
    }
    if (this.waiters.length > 0) this.schedule()
    else {
      this.state = 'idle'
      this.markIdle?.()
    }
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
