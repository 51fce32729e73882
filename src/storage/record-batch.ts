/**
 * One batch of the seen-id record (seen-ids.ts) as its writers see it: told once when the batch
 * is written or failed, through a listener each, so a ping-pong (a batch per message) makes no
 * promise, closure or extra microtask per message; a promise only for a caller that asks.
 */
const DONE: Promise<void> = Promise.resolve()

/** Told once when the batch holding a record is written (`err` undefined) or failed. */
export interface RecordListener {
  recorded(err: Error | undefined): void
}

/**
 * One batch of records: its writers hear of it through a listener each (no promise, closure or
 * microtask per batch in a ping-pong, where a batch is one message), or a promise made when asked.
 */
export class RecordBatch {
  /** The first listener, then the others (in a ping-pong there is one: no array). */
  private first: RecordListener | undefined
  private more: RecordListener[] | undefined
  private done = false
  private err: Error | undefined
  private promised: Promise<void> | undefined
  private resolve: (() => void) | undefined
  private reject: ((err: Error) => void) | undefined

  /** A batch settled already (a foreign id: nothing to write; after close: `err`). */
  static settled(err?: Error): RecordBatch {
    const b = new RecordBatch()
    b.done = true
    b.err = err
    return b
  }

  /** Tells `l` once written or failed: never synchronously, so a caller may listen before it is ready. */
  listen(l: RecordListener): void {
    if (this.done) queueMicrotask(() => l.recorded(this.err))
    else if (this.first === undefined) this.first = l
    else (this.more ??= []).push(l)
  }

  /** Resolves once written; rejects with its error. Made on first use. */
  get promise(): Promise<void> {
    if (this.promised) return this.promised
    if (this.done) return (this.promised = this.err ? Promise.reject(this.err) : DONE)
    return (this.promised = new Promise<void>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    }))
  }

  /** @internal Written (`err` undefined) or failed: tells every listener, then the promise. */
  settle(err: Error | undefined): void {
    this.done = true
    this.err = err
    const first = this.first
    const more = this.more
    this.first = this.more = undefined
    if (first) tell(first, err)
    if (more) for (let i = 0; i < more.length; i++) tell(more[i] as RecordListener, err)
    if (err) this.reject?.(err)
    else this.resolve?.()
  }
}


function tell(l: RecordListener, err: Error | undefined): void {
  try {
    l.recorded(err)
  } catch (thrown) {
    // Thrown as a rejection's reaction would be (uncaught), once the others are told.
    queueMicrotask(() => {
      throw thrown
    })
  }
}
