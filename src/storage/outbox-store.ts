/**
 * The persistent outbox: messages waiting for a peer, kept in storage (not in the heap) until
 * acknowledged, cancelled or expired. The delivery code above appends, lists a destination's
 * pending messages in order, and removes one on its acknowledgement.
 *
 * Durability: `append()` resolves once the message is in storage (group commit: the appends of
 * one turn share one batch, see group-commit.ts). With the default store that means written to
 * the OS in one atomic LevelDB batch: it survives a crash of the process (SIGKILL), and with
 * `sync: true` a power loss. A kad-fs store has no batch: each key is its own file write, not
 * atomic together, and slower; its counters are recounted from the keys at open.
 *
 * Memory: per destination a counter (messages, bytes, earliest expiry), the removals in flight
 * and the next sequence number; the messages stay in storage.
 *
 * Keys (fixed-width hex parts, so key order is number order):
 * - `outbox.m.<dest>.<seq>.<expiresAt>.<bytes>`: one message; key order = send order per
 *   destination. The key alone tells what a message counts and when it expires (scans read keys
 *   only). Its value: in the default store bytes (tag 0x01, createdAt, id, topic, protocol, the
 *   payload as it is); in string-only stores (kad-fs) JSON `{i, t, p, c, b}` (payload as base64).
 *   Both are read anywhere, so an outbox written before the byte form still loads;
 * - `outbox.c.<dest>`: JSON `{m, b, e}`: messages, bytes and a lower bound of the earliest
 *   expiry of that destination, written once per batch for each destination the batch touched;
 * - `outbox.meta`: JSON `{stream, next}`: the id stream and the bound of the sequence numbers
 *   reserved so far (a block at a time, before any is given; see `reservation()`).
 * One message costs one key; a batch adds one counter per destination and the high-water mark.
 * The codecs of these keys and values are in outbox-keys.ts.
 *
 * Over 400 lines: one class whose every method keeps the same three counters (bounds, committed,
 * removals in flight) consistent; split apart they would have to share that state.
 */
import { DeliveryError, InvalidArgumentError, StateError, StorageError } from '../errors.js'
import { GroupCommit } from './group-commit.js'
import { formatMessageId, isStreamId, newStreamId, parseMessageId } from './message-id.js'
import type { PlatformStorage } from './platform-storage.js'
import type { BatchOp } from './store.js'
import {
  BYTES_WIDTH,
  COUNT,
  HEX_WIDTH,
  MAIN,
  META,
  PREFIX_END,
  SCAN_CHUNK,
  counterOp,
  decodeCommitted,
  decodeStored,
  encodeRecordBinary,
  hex,
  RecordArena,
  mainKey,
  parseMainKey,
  type Committed,
  type Counter,
  type Delta,
  type KeyParts,
  type StoredMessage,
  encodeRecord
} from './outbox-keys.js'

/** Sequence numbers reserved in storage at a time (see OutboxStore.reservation). */
const SEQ_BLOCK = 1 << 20
/**
 * Most messages per batch. Smaller batches keep LevelDB's writer thread fed (the next one is
 * ready as the last is written), larger ones cost less per message: with 2,048 appends in flight
 * 512 was best or even on a quiet machine, 256 on a loaded one (docs/benchmarks.md, "Outbox
 * storage").
 */
export const DEFAULT_OUTBOX_BATCH = 512

/** Defaults of the bounds; every one can be set in {@link OutboxStoreOptions}. */
export const OUTBOX_DEFAULTS = {
  maxMessagesPerDestination: 100_000,
  maxBytesPerDestination: 256 * 1024 * 1024,
  maxMessages: 2_000_000,
  maxBytes: 2 * 1024 * 1024 * 1024
} as const


/** A message as it is appended. */
export interface OutboxInput {
  /** signId of the peer (no '.'). */
  destination: string
  topic: string
  protocol: string
  payload: Uint8Array
  /**
   * A byte stored before `payload` (0..255; counted in its size), so a caller whose payload
   * follows a tag need not copy both into one buffer. `payload` must stay unchanged until the
   * append is told done (its record is encoded only when it is written).
   */
  head?: number
  /** When it expires, ms since the epoch (the store's clock). */
  expiresAt: number
  /**
   * How long this append waits before it is written (ms; default the store's `writeBehindMs`).
   * Never written before an earlier append: its wait ends no sooner than theirs, so what is
   * written (and accepted) is always a prefix of what was appended.
   */
  writeBehindMs?: number
}

/** What the outbox knows of a stored message without its payload. */
export interface OutboxEntry {
  id: string
  destination: string
  seq: number
  expiresAt: number
  /** Payload, topic and protocol bytes: what the bounds count. */
  bytes: number
}

/** A stored message. */
export interface OutboxMessage extends OutboxEntry {
  topic: string
  protocol: string
  payload: Buffer
  createdAt: number
}

export interface OutboxStoreOptions {
  storage: PlatformStorage
  /** The clock (ms since the epoch); default Date.now. Tests pass their own. */
  now?: () => number
  maxMessagesPerDestination?: number
  maxBytesPerDestination?: number
  maxMessages?: number
  maxBytes?: number
  /** Flush every batch to the disk (survives a power loss; far slower). Default false. */
  sync?: boolean
  /** Most messages in one storage batch (default {@link DEFAULT_OUTBOX_BATCH}). */
  maxBatchOps?: number
  /**
   * Write-behind (ms; default 0: appends go to the next batch). An append waits this long before
   * it joins a batch; a message removed meanwhile (acknowledged at once by a live peer) is never
   * written at all, and its append resolves then. The platform uses a few ms.
   */
  writeBehindMs?: number
  /** Run {@link OutboxStore.expire} this often (ms); default: never by itself. */
  expiryIntervalMs?: number
  /** A message expired and was removed: `err.code === 'ERR_EXPIRED'`. */
  onExpired?: (message: OutboxEntry & { topic?: string }, err: DeliveryError) => void
  /** A stored entry does not decode: it was removed (`err.code === 'ERR_STORAGE_CORRUPT'`). */
  onCorrupt?: (err: StorageError, key: string) => void
}

/**
 * One append from add() until it is written or settled unwritten: the entry its caller
 * holds, what the write-behind needs to encode its record, and the tag of its write (a Delta).
 * One object per message: no promise, no closure of the outbox's own.
 */
export interface Appended extends OutboxEntry, Delta {
  readonly expiresAt: number
  /**
   * Its main key, made when it is written ('' until then: one settled within the write-behind
   * never needs it); a removal reads it (building it again costs hex()).
   */
  key: string
  readonly topic: string
  readonly protocol: string
  readonly createdAt: number
  /** Dropped once its record is queued (the batch copied it). */
  payload: Uint8Array | undefined
  /** The byte before the payload, or -1. */
  readonly head: number
  /** When its write-behind ends (performance.now(): a clock that never steps back), never before an earlier append's. */
  readonly due: number
  /** Told once: written (no error), settled before it was written (none, not `written`), or failed. */
  done: ((err: Error | undefined, written: boolean) => void) | undefined
  /** Settled before it was written ({@link OutboxStore.discard}): it never will be. */
  elided: boolean
  /** In the write-behind queue, waiting (see OutboxStore.behind). */
  waiting: boolean
}

/** The tag of a removal's write. */
interface Removal extends Delta {
  key: string
  onError: ((err: Error, destination: string) => void) | undefined
}

const DEST_RE = /^[A-Za-z0-9+/=_-]{1,200}$/
const HEX_BYTE = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** `after` of an append's tag: its write is done, or failed, or it was elided. */
function appendWritten(tag: Delta, err: Error | undefined): void {
  const a = tag as Appended
  const done = a.done
  a.done = undefined
  a.payload = undefined
  done?.(err, !a.elided)
}

export class OutboxStore {
  private readonly storage: PlatformStorage
  private readonly now: () => number
  private readonly limits: { -readonly [K in keyof typeof OUTBOX_DEFAULTS]: number }
  private readonly commit: GroupCommit
  /** Counts the bounds check: includes appends not yet written, excludes removals being written. */
  private readonly counters = new Map<string, Counter>()
  private readonly total: Counter = { messages: 0, bytes: 0 }
  /** What storage holds (as of the batches cut so far), written as `outbox.c.<dest>`. */
  private readonly committed = new Map<string, Committed>()
  /** Main keys whose removal is queued and not yet written: hidden from listings, not removed twice. */
  private readonly removing = new Set<string>()
  /**
   * Keys whose removal was written while a pending() read was under way: that read may have
   * begun before the removal, and must not show them once `removing` forgets them.
   */
  private readonly removedWhileReading = new Set<string>()
  private reads = 0
  private stream = ''
  private nextSeq = 0
  /** Sequence numbers below this are reserved in storage (`outbox.meta`): never given twice. */
  private reservedSeq = 0
  /** A reservation being written (its bound), if any. */
  private reserving: number | undefined
  private timer: NodeJS.Timeout | undefined
  private closed = false
  /**
   * Appends waiting out the write-behind delay, oldest first, in [behindAt, behindEnd): a queue
   * reused in place (a map by seq rehashed its table every other message in a ping-pong, where
   * each is added and settled in turn). One settled early stays, no longer `waiting`, until the
   * head passes it; `behindLive` counts those still waiting.
   */
  private readonly behind: Array<Appended | undefined> = []
  private behindAt = 0
  private behindEnd = 0
  private behindLive = 0
  /** The latest end of a write-behind given out: a later append's is never earlier. */
  private lastDue = 0
  /** Tags whose write is done (or was elided), told together in one microtask. */
  private settledTags: Array<Delta | undefined> = []
  /** The error of each of settledTags (no object per tag). */
  private settledErrs: Array<Error | undefined> = []
  /** How many of settledTags are set (the arrays are reused, see tellSettled). */
  private settledCount = 0
  /** The other pair of arrays: filled while one pair is told. */
  private spareTags: Array<Delta | undefined> = []
  private spareErrs: Array<Error | undefined> = []
  private behindTimer: NodeJS.Timeout | undefined
  private readonly options: OutboxStoreOptions
  /** Records as bytes (the default store) instead of JSON strings (kad-fs, memory). */
  private readonly binary: boolean
  private readonly arena = new RecordArena()
  /** Parts of the last key made (see keyOf). */
  private lastDest = ''
  /** The last destination that passed DEST_RE (a burst goes to one). */
  private checkedDest = ''
  private lastDestPrefix = ''
  private lastExpires = -1
  private lastExpiresHex = ''
  private lastSeqHigh = -1
  private lastSeqHighHex = ''
  private lastBytes = -1
  private lastBytesHex = ''

  private constructor(options: OutboxStoreOptions) {
    this.options = options
    this.storage = options.storage
    this.binary = options.storage.binaryValues
    this.now = options.now ?? Date.now
    this.limits = {
      maxMessagesPerDestination: options.maxMessagesPerDestination ?? OUTBOX_DEFAULTS.maxMessagesPerDestination,
      maxBytesPerDestination: options.maxBytesPerDestination ?? OUTBOX_DEFAULTS.maxBytesPerDestination,
      maxMessages: options.maxMessages ?? OUTBOX_DEFAULTS.maxMessages,
      maxBytes: options.maxBytes ?? OUTBOX_DEFAULTS.maxBytes
    }
    this.commit = new GroupCommit(options.storage, {
      sync: options.sync,
      maxBatchOps: options.maxBatchOps ?? DEFAULT_OUTBOX_BATCH,
      beforeBatch: (tags) => this.batchOps(tags as Array<Delta | undefined>),
      afterBatch: (tags, ok, err) => {
        for (const d of tags as Array<Delta | undefined>) {
          if (!d) continue
          if (!ok) {
            this.applyCommitted(d, -1)
            // An append's count is given back here (its callers share the batch's promise); a
            // removal gives its own back (removeKey, removed()).
            if (d.messages > 0) this.count(d.dest, -d.messages, -d.bytes)
          }
          if (d.after) this.told(d, ok ? undefined : (err ?? new StorageError('ERR_STORAGE_UNAVAILABLE', 'batch write failed')))
        }
      },
      refused: (tag, err) => {
        const d = tag as Delta | undefined
        if (!d) return
        if (d.messages > 0) this.count(d.dest, -d.messages, -d.bytes)
        if (d.after) this.told(d, err)
      }
    })
  }

  /**
   * Opens the outbox in an open storage: reads its id stream and the counters. Damaged records
   * are reported (`onCorrupt`) and the counts they held recounted from the keys.
   */
  static async open(options: OutboxStoreOptions): Promise<OutboxStore> {
    const outbox = new OutboxStore(options)
    await outbox.load()
    if (options.expiryIntervalMs !== undefined) {
      outbox.timer = setInterval(() => {
        outbox.expire().catch((err: unknown) => outbox.options.onCorrupt?.(err as StorageError, COUNT))
      }, options.expiryIntervalMs)
      outbox.timer.unref()
    }
    return outbox
  }

  private async load(): Promise<void> {
    const meta = await this.storage.get(META)
    if (meta !== undefined) {
      try {
        const m = JSON.parse(meta) as { stream?: unknown; next?: unknown }
        if (isStreamId(m.stream) && Number.isSafeInteger(m.next)) {
          this.stream = m.stream
          this.nextSeq = m.next as number
        }
      } catch {
        // reported below
      }
      if (!this.stream) this.reportCorrupt(META, 'the outbox id record does not decode; a new id stream is started')
    }
    if (!this.stream) this.stream = newStreamId()
    await this.loadCounters()
    // Ids from here on: a new block, reserved before any is given. Written straight to storage,
    // not through the group commit (idle here, and it would add nothing to this batch): its
    // first flush waits a turn of the event loop and cost a fresh process 0.75 ms of CPU before
    // `ready`, against 0.14 so (in a cold client on a MemoryStore).
    await this.storage.batch([this.reservation(this.nextSeq + SEQ_BLOCK)], { sync: this.options.sync })
    this.reservedSeq = this.nextSeq + SEQ_BLOCK
  }

  /**
   * The META record reserving sequence numbers below `bound`. A message may reach its peer before
   * its own write (the write-behind, the delivery's fast path), so its seq must be reserved in
   * storage first: after a crash the outbox starts past every seq it gave, and no id is reused
   * (a receiver would drop a reused id as already seen).
   */
  private reservation(bound: number): BatchOp {
    return { type: 'put', key: META, value: JSON.stringify({ stream: this.stream, next: bound }) }
  }

  /** True when `seq` is reserved in storage (see {@link reservation}). */
  isReserved(seq: number): boolean {
    return seq < this.reservedSeq
  }

  /** Reserves the next block once half of the current one is used (a write, well ahead of need). */
  private reserveAhead(): void {
    if (this.reserving !== undefined || this.nextSeq + SEQ_BLOCK / 2 < this.reservedSeq) return
    const bound = this.nextSeq + SEQ_BLOCK
    this.reserving = bound
    this.commit.write([this.reservation(bound)]).then(
      () => {
        this.reserving = undefined
        if (bound > this.reservedSeq) this.reservedSeq = bound
      },
      () => {
        this.reserving = undefined // tried again on the next append
      }
    )
  }

  private async loadCounters(): Promise<void> {
    if (!this.storage.atomicBatch) {
      // Writes of a kad-fs store are not atomic together: the keys are the truth.
      await this.recount()
      return
    }
    const damaged: string[] = []
    for (const { key, value } of await this.storage.range({ gte: COUNT, lt: COUNT + PREFIX_END })) {
      const dest = key.slice(COUNT.length)
      const c = decodeCommitted(value)
      if (!c) {
        this.reportCorrupt(key, 'an outbox counter does not decode; it is recounted from the stored messages')
        damaged.push(dest)
        continue
      }
      if (c.messages > 0) this.setCounts(dest, c)
    }
    for (const dest of damaged) await this.recount(dest)
  }

  /** Counts from the keys (all destinations, or one), and rewrites their counters. */
  private async recount(only?: string): Promise<void> {
    const counts = new Map<string, Committed>()
    let maxSeq = -1
    const prefix = only === undefined ? MAIN : `${MAIN}${only}.`
    await this.scanKeys(prefix, prefix + PREFIX_END, async (key) => {
      const k = parseMainKey(key)
      if (!k) {
        this.reportCorrupt(key, 'an outbox key does not decode; it is removed')
        await this.commit.write([{ type: 'del', key }])
        return
      }
      const c = counts.get(k.dest) ?? { messages: 0, bytes: 0, minExpiresAt: Infinity }
      c.messages++
      c.bytes += k.bytes
      c.minExpiresAt = Math.min(c.minExpiresAt, k.expiresAt)
      counts.set(k.dest, c)
      if (k.seq > maxSeq) maxSeq = k.seq
    })
    if (only !== undefined) counts.set(only, counts.get(only) ?? { messages: 0, bytes: 0, minExpiresAt: Infinity })
    for (const [dest, c] of counts) {
      this.dropCounts(dest)
      this.setCounts(dest, c)
    }
    if (maxSeq >= this.nextSeq) this.nextSeq = maxSeq + 1
    const ops: BatchOp[] = [...counts].map(([dest, c]) => counterOp(dest, c))
    if (ops.length) await this.commit.write(ops)
  }

  private setCounts(dest: string, c: Committed): void {
    if (c.messages <= 0) return
    this.committed.set(dest, { ...c })
    this.counters.set(dest, { messages: c.messages, bytes: c.bytes })
    this.total.messages += c.messages
    this.total.bytes += c.bytes
  }

  private dropCounts(dest: string): void {
    const c = this.counters.get(dest)
    if (c) {
      this.total.messages -= c.messages
      this.total.bytes -= c.bytes
    }
    this.counters.delete(dest)
    this.committed.delete(dest)
  }

  /** Calls `fn` for each key in `[gte, lt)`, reading keys only, a chunk at a time. */
  private async scanKeys(gte: string, lt: string, fn: (key: string) => Promise<void> | void): Promise<void> {
    let from = gte
    for (;;) {
      const chunk = await this.storage.range({ gte: from, lt, limit: SCAN_CHUNK, values: false })
      for (const e of chunk) await fn(e.key)
      if (chunk.length < SCAN_CHUNK) return
      from = (chunk[chunk.length - 1] as { key: string }).key + '\u0000'
    }
  }

  /** The bounds' counter: changed at once by appends and removals. */
  private count(dest: string, messages: number, bytes: number): void {
    let c = this.counters.get(dest)
    if (!c) {
      c = { messages: 0, bytes: 0 }
      this.counters.set(dest, c)
    }
    c.messages += messages
    c.bytes += bytes
    this.total.messages += messages
    this.total.bytes += bytes
    if (c.messages <= 0) this.counters.delete(dest)
  }

  private applyCommitted(d: Delta, sign: 1 | -1): void {
    let c = this.committed.get(d.dest)
    if (!c) {
      c = { messages: 0, bytes: 0, minExpiresAt: Infinity }
      this.committed.set(d.dest, c)
    }
    c.messages += sign * d.messages
    c.bytes += sign * d.bytes
    if (sign === 1 && d.expiresAt !== undefined && d.expiresAt < c.minExpiresAt) c.minExpiresAt = d.expiresAt
  }

  /** The counters of the destinations this batch touches, and the id high-water mark. */
  private batchOps(tags: Array<Delta | undefined>): BatchOp[] {
    const touched = new Set<string>()
    for (const d of tags) {
      if (!d) continue
      this.applyCommitted(d, 1)
      touched.add(d.dest)
    }
    const ops: BatchOp[] = []
    for (const dest of touched) {
      const c = this.committed.get(dest) as Committed
      ops.push(counterOp(dest, c))
      if (c.messages <= 0) this.committed.delete(dest)
    }
    return ops
  }

  private reportCorrupt(key: string, what: string): void {
    const err = new StorageError('ERR_STORAGE_CORRUPT', `${what} (key ${JSON.stringify(key).slice(0, 200)})`)
    this.options.onCorrupt?.(err, key)
  }

  /**
   * Stores a message; resolves with its entry (and durable id) once it is in storage.
   * @throws InvalidArgumentError for a malformed message; DeliveryError `ERR_QUEUE_FULL` past a
   * bound (per destination or in total, messages or bytes); StateError after close() (as rejections).
   */
  append(input: OutboxInput): Promise<OutboxEntry> {
    try {
      const { entry, written } = this.appendNow(input)
      return written.then(() => entry)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Like {@link append}, but the sequence number and id are given now, with a promise of the
   * write: a sender can put the message on the wire while storage writes it (it counts as
   * accepted only once `written` resolves). Bounds are counted at once.
   * @throws (synchronously) what {@link append} rejects with.
   */
  appendNow(input: OutboxInput): { entry: OutboxEntry; written: Promise<void> } {
    let done!: (err: Error | undefined) => void
    const written = new Promise<void>((resolve, reject) => {
      done = (err) => (err === undefined ? resolve() : reject(err))
    })
    const entry = this.add(input, done)
    return { entry: { id: entry.id, destination: entry.destination, seq: entry.seq, expiresAt: entry.expiresAt, bytes: entry.bytes }, written }
  }

  /**
   * {@link appendNow} without a promise: `done` is told once, never synchronously, when the
   * message is written (no error, `written`), settled before it was written ({@link discard}; no
   * error, not `written`), or when its write failed. The entry given is the outbox's own: read it, do not change it; pass it
   * to {@link discard} once settled.
   * @throws (synchronously) what {@link append} rejects with.
   */
  add(input: OutboxInput, done: (err: Error | undefined, written: boolean) => void): Appended {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the outbox is closed')
    const { destination, topic, protocol, payload, expiresAt, head } = input ?? ({} as OutboxInput)
    if (typeof destination !== 'string' || (destination !== this.checkedDest && !DEST_RE.test(destination))) {
      throw new InvalidArgumentError('an outbox destination must be a signId')
    }
    this.checkedDest = destination
    if (typeof topic !== 'string' || typeof protocol !== 'string') throw new InvalidArgumentError('topic and protocol must be strings')
    if (!(payload instanceof Uint8Array)) throw new InvalidArgumentError('an outbox payload must be bytes')
    if (!Number.isSafeInteger(expiresAt) || expiresAt < 0 || expiresAt >= 16 ** HEX_WIDTH) throw new InvalidArgumentError('expiresAt must be a time in ms')
    if (head !== undefined && !(Number.isInteger(head) && head >= 0 && head <= 255)) throw new InvalidArgumentError('head must be a byte')
    const bytes = payload.length + (head === undefined ? 0 : 1) + topic.length + protocol.length
    if (bytes >= 16 ** BYTES_WIDTH) throw new InvalidArgumentError('an outbox message must be under 4 GiB')
    const c = this.counters.get(destination)
    const full =
      (c?.messages ?? 0) + 1 > this.limits.maxMessagesPerDestination
        ? `${this.limits.maxMessagesPerDestination} messages for this destination`
        : (c?.bytes ?? 0) + bytes > this.limits.maxBytesPerDestination
          ? `${this.limits.maxBytesPerDestination} bytes for this destination`
          : this.total.messages + 1 > this.limits.maxMessages
            ? `${this.limits.maxMessages} messages in all`
            : this.total.bytes + bytes > this.limits.maxBytes
              ? `${this.limits.maxBytes} bytes in all`
              : undefined
    if (full) throw new DeliveryError('ERR_QUEUE_FULL', `the outbox is full: at most ${full}`)
    const seq = this.nextSeq++
    this.reserveAhead()
    // Counted now, so concurrent appends see the bound; given back (afterBatch, refused) if the
    // write fails.
    this.count(destination, 1, bytes)
    const a: Appended = {
      id: formatMessageId(this.stream, seq),
      destination,
      seq,
      expiresAt,
      bytes,
      dest: destination,
      messages: 1,
      after: appendWritten,
      key: '',
      topic,
      protocol,
      createdAt: this.now(),
      payload,
      head: head ?? -1,
      due: 0,
      done,
      elided: false,
      waiting: false
    }
    const wait = input.writeBehindMs ?? this.options.writeBehindMs ?? 0
    if (wait > 0 || this.behindLive > 0) {
      const now = performance.now()
      const due = Math.max(this.lastDue, now + wait)
      this.lastDue = due
      ;(a as { due: number }).due = due
      a.waiting = true
      this.behind[this.behindEnd++] = a
      this.behindLive++
      if (!this.behindTimer) this.armBehind(due - now)
    } else this.writeAppended(a)
    return a
  }

  /**
   * mainKey() of an append, from parts kept from the last one: one destination and one expiry
   * (to the ms) are common in a burst, and hex() of a time is costly (measured 8%).
   */
  private keyOf(a: Appended): string {
    const { dest, seq, expiresAt, bytes } = a
    if (dest !== this.lastDest) {
      this.lastDest = dest
      this.lastDestPrefix = `${MAIN}${dest}.`
    }
    if (expiresAt !== this.lastExpires) {
      this.lastExpires = expiresAt
      this.lastExpiresHex = `.${hex(expiresAt)}.`
    }
    // Number#toString(16) is slow (a float path): the seq's upper digits change every 256th.
    const high = Math.floor(seq / 256)
    if (high !== this.lastSeqHigh) {
      this.lastSeqHigh = high
      this.lastSeqHighHex = hex(high, HEX_WIDTH - 2)
    }
    if (bytes !== this.lastBytes) {
      this.lastBytes = bytes
      this.lastBytesHex = hex(bytes, BYTES_WIDTH)
    }
    return this.lastDestPrefix + this.lastSeqHighHex + (HEX_BYTE[seq & 255] as string) + this.lastExpiresHex + this.lastBytesHex
  }

  /** Tells a tag's `after` (batched: one microtask for all the tags settled in a turn). */
  private told(tag: Delta, err: Error | undefined): void {
    const n = this.settledCount++
    this.settledTags[n] = tag
    this.settledErrs[n] = err
    if (n === 0) queueMicrotask(this.tellSettled)
  }

  private readonly tellSettled = (): void => {
    // Two pairs of arrays in turn (no new ones per microtask): what is told meanwhile goes to the
    // other pair, and a microtask of its own.
    const tags = this.settledTags
    const errs = this.settledErrs
    const count = this.settledCount
    this.settledTags = this.spareTags
    this.settledErrs = this.spareErrs
    this.settledCount = 0
    this.spareTags = tags
    this.spareErrs = errs
    for (let i = 0; i < count; i++) {
      const tag = tags[i] as Delta
      try {
        ;(tag.after as NonNullable<Delta['after']>)(tag, errs[i])
      } catch (err) {
        // Thrown as before (uncaught), but after the others are told.
        queueMicrotask(() => {
          throw err
        })
      }
    }
    if (count > 1024) {
      this.spareTags = [] // a burst's: not kept
      this.spareErrs = []
    } else {
      tags.fill(undefined, 0, count) // nothing held once told
      errs.fill(undefined, 0, count)
    }
  }

  private armBehind(ms: number): void {
    this.behindTimer = setTimeout(() => this.flushAged(), Math.max(1, Math.ceil(ms)))
    this.behindTimer.unref()
  }

  /**
   * Appends that have waited out the write-behind go to the group commit; younger ones wait on
   * (one timer, for the oldest of them). A batch timer that took every append would give the
   * last of a burst almost no time to be acknowledged: a bulk sender's messages were written.
   */
  private flushAged(): void {
    this.behindTimer = undefined
    const now = performance.now()
    const q = this.behind
    while (this.behindAt < this.behindEnd) {
      const a = q[this.behindAt] as Appended
      if (a.waiting) {
        if (a.due > now) {
          this.armBehind(a.due - now)
          return
        }
        a.waiting = false
        this.behindLive--
        this.writeAppended(a)
      }
      q[this.behindAt++] = undefined
    }
    this.behindAt = this.behindEnd = 0
  }

  /** Appends still waiting out the write-behind go to the group commit now. */
  private flushBehind(): void {
    if (this.behindTimer) clearTimeout(this.behindTimer)
    this.behindTimer = undefined
    const q = this.behind
    const waiting: Appended[] = []
    for (let i = this.behindAt; i < this.behindEnd; i++) {
      const a = q[i] as Appended
      q[i] = undefined
      if (!a.waiting) continue
      a.waiting = false
      waiting.push(a)
    }
    this.behindAt = this.behindEnd = this.behindLive = 0
    for (const a of waiting) this.writeAppended(a)
  }

  /** Queues one record's write; the arena's chunk is reused at once (add() copied the bytes). */
  private writeAppended(a: Appended): void {
    const payload = a.payload as Uint8Array
    a.payload = undefined
    a.key = this.keyOf(a)
    const op: BatchOp = this.binary
      ? { type: 'put', key: a.key, value: encodeRecordBinary(this.arena, a.id, a.topic, a.protocol, a.createdAt, payload, a.head) }
      : { type: 'put', key: a.key, value: encodeRecord(a.id, a.topic, a.protocol, a.createdAt, payload, a.head) }
    this.commit.add([op], a)
    if (this.binary) this.arena.reset()
  }

  /**
   * Up to `limit` pending messages for `destination`, oldest first, starting after `afterSeq`.
   * Expired ones are left out (see {@link expire}); damaged ones are reported and removed.
   */
  async pending(destination: string, options: { limit?: number; afterSeq?: number } = {}): Promise<OutboxMessage[]> {
    const limit = options.limit ?? 100
    const prefix = `${MAIN}${destination}.`
    const out: OutboxMessage[] = []
    const now = this.now()
    let from = options.afterSeq === undefined ? prefix : `${prefix}${hex(options.afterSeq + 1)}`
    this.reads++
    try {
      await this.readPending(destination, prefix, from, limit, now, out)
    } finally {
      if (--this.reads === 0) this.removedWhileReading.clear()
    }
    return out
  }

  private async readPending(destination: string, prefix: string, from: string, limit: number, now: number, out: OutboxMessage[]): Promise<void> {
    while (out.length < limit) {
      const chunk = await this.readRange({ gte: from, lt: prefix + PREFIX_END, limit: Math.min(SCAN_CHUNK, limit - out.length + this.removing.size) })
      for (const { key, value } of chunk) {
        if (out.length >= limit) break
        if (this.removing.has(key) || this.removedWhileReading.has(key)) continue
        const k = parseMainKey(key)
        const r = decodeStored(value)
        if (!k || !r) {
          await this.removeDamaged(key, k)
          continue
        }
        if (k.expiresAt <= now) continue
        out.push({ id: r.id, destination, seq: k.seq, expiresAt: k.expiresAt, bytes: k.bytes, topic: r.topic, protocol: r.protocol, payload: r.payload, createdAt: r.createdAt })
      }
      if (chunk.length === 0 || out.length >= limit) break
      from = (chunk[chunk.length - 1] as { key: string }).key + '\u0000'
    }
  }

  /** Message records in a key range, as bytes where the store keeps bytes. */
  private readRange(options: { gte: string; lt: string; limit?: number }): Promise<Array<{ key: string; value: string | Buffer }>> {
    return this.binary ? this.storage.rangeBinary(options) : this.storage.range(options)
  }

  /** One stored message, decoded; null when it is missing or damaged. */
  private async readMessage(key: string): Promise<StoredMessage | null> {
    const [hit] = await this.readRange({ gte: key, lt: key + '\u0000', limit: 1 })
    return hit ? decodeStored(hit.value) : null
  }

  private async removeDamaged(key: string, k: KeyParts | null): Promise<void> {
    this.reportCorrupt(key, 'an outbox message does not decode; it is removed')
    if (k) await this.removeKey(k)
    else {
      await this.commit.write([{ type: 'del', key }])
      const dest = key.slice(MAIN.length).split('.')[0]
      if (dest) await this.recount(dest)
    }
  }

  /** Removes a message by its key; false when it is not there (or already being removed). */
  private async removeKey(k: KeyParts, known = false): Promise<boolean> {
    if (this.elide(k.seq)) return true
    const key = mainKey(k)
    if (this.removing.has(key)) return false
    this.removing.add(key)
    try {
      if (!known && (await this.storage.get(key)) === undefined) return false
      this.count(k.dest, -1, -k.bytes)
      try {
        await this.commit.write([{ type: 'del', key }], { dest: k.dest, messages: -1, bytes: -k.bytes } satisfies Delta)
      } catch (err) {
        this.count(k.dest, 1, k.bytes)
        throw err
      }
      return true
    } finally {
      this.removing.delete(key)
      if (this.reads > 0) this.removedWhileReading.add(key)
    }
  }

  /**
   * Removes a delivered message (on its acknowledgement): pass the entry `pending()` or
   * `appendNow()` gave. Resolves true once the removal is written, false when it was not pending.
   * With `known: true` the caller vouches that the message is stored (or its write queued) and
   * that nothing removed it yet, so storage is not read first; the removal is queued behind the
   * write. The delivery code knows this: an ACK settles a message only while it is in flight.
   */
  remove(message: Pick<OutboxEntry, 'destination' | 'seq' | 'expiresAt' | 'bytes'>, options: { known?: boolean } = {}): Promise<boolean> {
    if (this.closed) return Promise.reject(new StateError('ERR_CLOSED', 'the outbox is closed'))
    return this.removeKey({ dest: message.destination, seq: message.seq, expiresAt: message.expiresAt, bytes: message.bytes }, options.known === true)
  }

  /**
   * {@link remove} with `known: true`, without a promise: for the delivery's ACKs, one per
   * message. A message still waiting out the write-behind is dropped at once (never written);
   * else its removal is queued. `onError` hears of a removal that could not be written (the
   * message is then sent again after a restart). Pass the entry {@link add} gave (its key is
   * kept), or what {@link pending} read.
   */
  discard(message: Pick<OutboxEntry, 'destination' | 'seq' | 'expiresAt' | 'bytes'> & { key?: string }, onError?: (err: Error, destination: string) => void): void {
    if (this.closed) {
      onError?.(new StateError('ERR_CLOSED', 'the outbox is closed'), message.destination)
      return
    }
    if (this.elide(message.seq, message)) return
    const dest = message.destination
    const key = message.key || mainKey({ dest, seq: message.seq, expiresAt: message.expiresAt, bytes: message.bytes })
    if (this.removing.has(key)) return
    this.removing.add(key)
    this.count(dest, -1, -message.bytes)
    this.commit.add([{ type: 'del', key }], { dest, messages: -1, bytes: -message.bytes, after: this.removed, key, onError } satisfies Removal)
  }

  /** A removal of {@link discard} is written, or failed: its count comes back then. */
  private readonly removed = (tag: Delta, err: Error | undefined): void => {
    const r = tag as Removal
    this.removing.delete(r.key)
    if (!err) {
      if (this.reads > 0) this.removedWhileReading.add(r.key)
      return
    }
    this.count(r.dest, 1, -r.bytes)
    r.onError?.(err, r.dest)
  }

  /**
   * Drops an append still waiting out the write-behind (settled first): never written, done.
   * `entry`: what the caller holds of it, the append itself when add() gave it (then no search).
   */
  private elide(seq: number, entry?: object): boolean {
    if (this.behindLive === 0) return false
    const q = this.behind
    let waiting: Appended | undefined
    if ((entry as Partial<Appended> | undefined)?.waiting === true && (entry as Appended).seq === seq && (entry as Appended).after === appendWritten) waiting = entry as Appended
    else {
      for (let i = this.behindAt; i < this.behindEnd; i++) {
        const a = q[i] as Appended
        if (a.seq === seq && a.waiting) {
          waiting = a
          break
        }
      }
      if (!waiting) return false
    }
    waiting.waiting = false
    this.behindLive--
    // The settled ones at the head go (in a ping-pong, the queue is empty again).
    while (this.behindAt < this.behindEnd && !(q[this.behindAt] as Appended).waiting) q[this.behindAt++] = undefined
    if (this.behindAt === this.behindEnd) this.behindAt = this.behindEnd = 0
    this.count(waiting.dest, -1, -waiting.bytes)
    waiting.elided = true
    this.told(waiting, undefined)
    return true
  }

  /** Removes a pending message by destination and id (a user's cancel); false when not pending. */
  async cancel(destination: string, id: string): Promise<boolean> {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the outbox is closed')
    this.flushBehind()
    const parts = parseMessageId(id)
    if (!parts) return false
    await this.commit.drain() // a message sent a moment ago may still be on its way to storage
    const prefix = `${MAIN}${destination}.${hex(parts.seq)}.`
    const [hit] = await this.storage.range({ gte: prefix, lt: prefix + PREFIX_END, limit: 1, values: false })
    const k = hit ? parseMainKey(hit.key) : null
    return k ? this.removeKey(k) : false
  }

  /**
   * Removes every message whose `expiresAt` has passed (by the store's clock), reporting each to
   * `onExpired` with a DeliveryError `ERR_EXPIRED`. Only destinations whose earliest expiry has
   * passed are read (their keys only). Resolves with how many expired.
   */
  async expire(): Promise<number> {
    if (this.closed) return 0
    this.flushBehind()
    const now = this.now()
    let expired = 0
    for (const [dest, c] of [...this.committed]) {
      if (c.minExpiresAt > now) continue
      const due: KeyParts[] = []
      let min = Infinity
      await this.scanKeys(`${MAIN}${dest}.`, `${MAIN}${dest}.${PREFIX_END}`, (key) => {
        const k = parseMainKey(key)
        if (!k) return
        if (k.expiresAt <= now) due.push(k)
        else if (k.expiresAt < min) min = k.expiresAt
      })
      // Exact now (it was a lower bound): this destination is read again only once `min` passes.
      c.minExpiresAt = min
      for (const k of due) {
        const r = await this.readMessage(mainKey(k))
        if (!(await this.removeKey(k))) continue
        expired++
        const id = r?.id ?? formatMessageId(this.stream, k.seq)
        const err = new DeliveryError('ERR_EXPIRED', `message ${id} to ${k.dest} expired before it was delivered`)
        this.options.onExpired?.({ id, destination: k.dest, seq: k.seq, expiresAt: k.expiresAt, bytes: k.bytes, topic: r?.topic }, err)
      }
    }
    return expired
  }

  /**
   * What is pending, without payloads, for a user's view (`platform.outbox`): per destination
   * oldest first, at most `limit` in all. Reads storage; age is `now - createdAt`.
   */
  async list(limit = 1000): Promise<Array<Omit<OutboxMessage, 'payload'>>> {
    this.flushBehind()
    await this.commit.drain()
    const out: Array<Omit<OutboxMessage, 'payload'>> = []
    for (const dest of this.destinations()) {
      if (out.length >= limit) break
      for (const m of await this.pending(dest, { limit: limit - out.length })) {
        const { payload: _payload, ...info } = m
        out.push(info)
      }
    }
    return out
  }

  /**
   * The live counter of one destination (undefined: nothing pending), or the total: read it at
   * once, do not keep or change it. {@link stats} without an object per call (a send reads it
   * several times).
   */
  counter(destination?: string): Readonly<Counter> | undefined {
    return destination === undefined ? this.total : this.counters.get(destination)
  }

  /** Pending messages and bytes: for one destination, or in total. */
  stats(destination?: string): { messages: number; bytes: number } {
    const c = destination === undefined ? this.total : this.counters.get(destination)
    return { messages: c?.messages ?? 0, bytes: c?.bytes ?? 0 }
  }

  /** Destinations with pending messages. */
  destinations(): string[] {
    return [...this.counters.keys()]
  }

  /** Ids are `<stream>-<seq>`: this store's stream. */
  get streamId(): string {
    return this.stream
  }

  /** Batches written so far (stats, benchmarks). */
  get batchesWritten(): number {
    return this.commit.batches
  }

  /** Writes what is queued, stops the expiry timer; later calls reject with ERR_CLOSED. Idempotent. */
  async close(): Promise<void> {
    this.flushBehind()
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    await this.commit.close()
  }
}
