/**
 * The receiver's persistent record of message ids it has handled, so a message resent after a
 * lost acknowledgement or a restart reaches the handlers once.
 *
 * Compact because of the id's shape (message-id.ts): per sender and id stream, the highest `seq`
 * handled and, for the {@link SEEN_DEFAULTS.windowSeqs} seqs up to it, exactly which were handled
 * (a bitmap, kept only while one of them is not). A sender sends each destination's messages in
 * `seq` order (connections/send.ts keeps that order across sessions), but its seqs are shared by
 * all its destinations, and an order broken anyway (a message loaded late from a store without
 * atomic batches, a future path) must not look like a resend: before this window, a message that
 * arrived after a higher one was dropped as a duplicate and acknowledged, so lost. The bound: a
 * message that arrives more than `windowSeqs` of its sender's seqs behind the highest handled is
 * taken as a duplicate. An id that is not of our shape is never recorded and never counted as seen.
 *
 * Bounded by expiry: a stream's record is kept until the latest `expiresAt` of a message handled
 * in it, plus {@link SEEN_DEFAULTS.skewMs} for clock skew, but never longer than
 * `maxHoldMs` from when it was recorded; after that no resend of it can still come (the sender
 * drops expired messages). Also at most `maxStreamsPerSender` streams per sender and
 * `maxSenders` senders (the record that expires first makes room). Memory: a few numbers per
 * stream, and `windowSeqs / 8` bytes (512) for one with a seq not handled in its window.
 *
 * Storage: `seen.<sender>` = JSON `{ "<stream>": [highSeq, keepUntil, bitmap?], ... }`, the
 * bitmap base64 (bit `seq mod windowSeqs` set: handled), written in batches (all senders
 * recorded in one turn go in one batch, one op each). `record()` resolves once written:
 * acknowledge only then. The records of one batch share one {@link RecordBatch} (record-batch.ts):
 * no promise, closure or queue entry per id. Not group-commit.ts: its per-write bookkeeping cost
 * ~2 us per batch, which in a ping-pong is per message.
 */
import { StateError, StorageError } from '../errors.js'
import { isStreamId, parseMessageId } from './message-id.js'
import type { PlatformStorage } from './platform-storage.js'
import type { BatchOp } from './store.js'
import { RecordBatch } from './record-batch.js'
import { fresh, getBit, handled, mark, type StreamRecord } from './seen-window.js'
export { RecordBatch, type RecordListener } from './record-batch.js'

export const SEEN_DEFAULTS = {
  /** Kept past a message's expiry, for clocks that differ. */
  skewMs: 10 * 60_000,
  /** Longest a record is kept, whatever expiry a sender claims (30 days). */
  maxHoldMs: 30 * 24 * 3_600_000,
  maxStreamsPerSender: 4,
  maxSenders: 100_000,
  /** Seqs up to the highest handled whose fate is kept exactly (a multiple of 8). */
  windowSeqs: 4096
} as const

const PREFIX = 'seen.'
/** What a record of a foreign id resolves with: nothing to write. */
const DONE: Promise<void> = Promise.resolve()

/** The batch of a foreign id's record: nothing to write, written at once. */
const NOTHING = RecordBatch.settled()

export interface SeenIdsOptions {
  storage: PlatformStorage
  now?: () => number
  skewMs?: number
  maxHoldMs?: number
  maxStreamsPerSender?: number
  maxSenders?: number
  /** See {@link SEEN_DEFAULTS.windowSeqs}; a multiple of 8. */
  windowSeqs?: number
  sync?: boolean
  /** A stored record does not decode: it is dropped (resends from that sender may be seen again). */
  onCorrupt?: (err: StorageError, key: string) => void
}


export class SeenIds {
  private readonly senders = new Map<string, Map<string, StreamRecord>>()
  private readonly dirty = new Set<string>()
  /**
   * `seen.<sender>` per sender with a record: made and hashed once, not concatenated afresh per
   * batch (a new string is flattened and hashed by every Map it is written to).
   */
  private readonly keys = new Map<string, string>()
  /** The sender recorded last (the one in `dirty` when it holds one, usually), and the op reused for it. */
  private lastDirty = ''
  private readonly oneOp = { type: 'put' as const, key: '', value: '' }
  private readonly oneOps: BatchOp[] = [this.oneOp]
  /** The next batch, joined by every record until it is cut; the batch being written. */
  private next: RecordBatch | undefined
  private writing: RecordBatch | undefined
  private readonly now: () => number
  private readonly o: Required<Pick<SeenIdsOptions, 'skewMs' | 'maxHoldMs' | 'maxStreamsPerSender' | 'maxSenders' | 'windowSeqs'>>
  private closed = false
  private readonly writeOptions: { sync?: boolean }

  private constructor(private readonly options: SeenIdsOptions) {
    this.now = options.now ?? Date.now
    this.writeOptions = { sync: options.sync }
    this.o = {
      skewMs: options.skewMs ?? SEEN_DEFAULTS.skewMs,
      maxHoldMs: options.maxHoldMs ?? SEEN_DEFAULTS.maxHoldMs,
      maxStreamsPerSender: options.maxStreamsPerSender ?? SEEN_DEFAULTS.maxStreamsPerSender,
      maxSenders: options.maxSenders ?? SEEN_DEFAULTS.maxSenders,
      windowSeqs: options.windowSeqs ?? SEEN_DEFAULTS.windowSeqs
    }
    const w = this.o.windowSeqs
    if (!Number.isSafeInteger(w) || w < 8 || w % 8 !== 0) throw new StateError('ERR_INVALID_ARGUMENT', 'windowSeqs must be a positive multiple of 8')
  }

  /** Loads the records from an open storage, dropping expired ones; damaged ones are reported. */
  static async open(options: SeenIdsOptions): Promise<SeenIds> {
    const seen = new SeenIds(options)
    options.storage.journal(PREFIX) // written at once where the store can (level-journal.ts)
    const now = seen.now()
    for (const { key, value } of await options.storage.range({ gte: PREFIX, lt: PREFIX + '\uffff' })) {
      const sender = key.slice(PREFIX.length)
      const streams = decode(value, seen.o.windowSeqs)
      if (!streams) {
        options.onCorrupt?.(new StorageError('ERR_STORAGE_CORRUPT', `the seen-id record of ${sender} does not decode; it is dropped, so a message from that sender may reach the handlers again`), key)
        seen.dirty.add(sender)
        continue
      }
      for (const [stream, rec] of streams) if (rec.until <= now) streams.delete(stream)
      if (streams.size) seen.senders.set(sender, streams)
      else seen.dirty.add(sender)
    }
    if (seen.dirty.size) await seen.write().promise
    return seen
  }

  /** True when `id` from `sender` was recorded as handled. */
  has(sender: string, id: string): boolean {
    const parts = parseMessageId(id)
    return parts !== null && this.hasSeq(sender, parts.stream, parts.seq)
  }

  /**
   * {@link has} for an id in parts (`stream`: 16 lowercase hex digits), as the wire carries it:
   * no id text to format and parse again per message. A `seq` that is not a safe integer is not
   * of our shape: never seen.
   */
  hasSeq(sender: string, stream: string, seq: number): boolean {
    if (!Number.isSafeInteger(seq) || seq < 0) return false
    const rec = this.senders.get(sender)?.get(stream)
    return rec !== undefined && rec.until > this.now() && handled(rec, seq, this.o.windowSeqs)
  }

  /**
   * Records `id` from `sender` as handled, kept until `expiresAt` (plus skew, at most maxHoldMs
   * from now). Resolves once written; a foreign id resolves at once and records nothing.
   */
  record(sender: string, id: string, expiresAt: number): Promise<void> {
    if (this.closed) return Promise.reject(new StateError('ERR_CLOSED', 'the seen-id record is closed'))
    const parts = parseMessageId(id)
    if (!parts) return DONE
    return this.recordSeq(sender, parts.stream, parts.seq, expiresAt)
  }

  /**
   * {@link record} for an id in parts (see {@link hasSeq}). The records of one batch share one
   * promise; a foreign id (`seq` not a safe integer) gets one resolved promise, always the same.
   */
  recordSeq(sender: string, stream: string, seq: number, expiresAt: number): Promise<void> {
    return this.markSeq(sender, stream, seq, expiresAt).promise
  }

  /**
   * {@link recordSeq} giving the batch that holds the record (listen to it: no promise). After
   * close(), a batch failed with ERR_CLOSED; a foreign id's is written already.
   */
  markSeq(sender: string, stream: string, seq: number, expiresAt: number): RecordBatch {
    if (this.closed) return RecordBatch.settled(new StateError('ERR_CLOSED', 'the seen-id record is closed'))
    if (!Number.isSafeInteger(seq) || seq < 0) return NOTHING
    const now = this.now()
    const until = Math.min(Number.isFinite(expiresAt) ? expiresAt : Infinity, now + this.o.maxHoldMs) + this.o.skewMs
    let streams = this.senders.get(sender)
    if (!streams) {
      if (this.senders.size >= this.o.maxSenders) this.evictSender()
      streams = new Map()
      this.senders.set(sender, streams)
    }
    const rec = streams.get(stream)
    if (rec) {
      mark(rec, seq, this.o.windowSeqs)
      if (until > rec.until) rec.until = until
    } else {
      // The record making room lends its bitmap: a sender cycling through streams (a flood of
      // new ones) then allocates none per message.
      const spare = streams.size >= this.o.maxStreamsPerSender ? evictEarliest(streams) : undefined
      streams.set(stream, fresh(seq, until, this.o.windowSeqs, spare?.bits))
    }
    this.dirty.add(sender)
    this.lastDirty = sender
    return this.write()
  }

  /**
   * The next batch's write: one promise for every record that joins it. Batches go one at a time:
   * records made in one turn (setImmediate: after the turn's reads), or while one is written, go
   * together, each sender's record once (a group commit of its own: one op per sender, encoded
   * when cut, so none of group-commit.ts's per-write bookkeeping).
   */
  private write(): RecordBatch {
    if (this.next) return this.next
    const batch = new RecordBatch()
    this.next = batch
    if (!this.writing) setImmediate(this.cut)
    return batch
  }

  /** Cuts the next batch and hands it to storage now, unless one is being written (it follows that). */
  readonly cut = (): void => {
    const batch = this.next
    if (!batch || this.writing) return
    this.next = undefined
    this.writing = batch
    let ops: BatchOp[]
    const storage = this.options.storage
    try {
      const one = this.lastDirty
      if (this.dirty.size === 1 && this.dirty.has(one) && this.senders.has(one)) {
        // One sender's record (a ping-pong's batch): its op is reused where the store writes it
        // within the call, which keeps no op (see KadStore.batchNow).
        const op = this.oneOp
        op.key = this.keyOf(one)
        op.value = encode(this.senders.get(one) as Map<string, StreamRecord>)
        this.dirty.clear()
        if (storage.batchNow(this.oneOps, this.writeOptions)) return this.written(batch, undefined)
        ops = [{ type: 'put', key: op.key, value: op.value }]
      } else {
        ops = this.dirtyOps()
        // Written within the call where the store can (memory, LevelDB's journal): told at
        // once, no promise per batch (in a ping-pong, per message).
        if (storage.batchNow(ops, this.writeOptions)) return this.written(batch, undefined)
      }
    } catch (err) {
      return this.written(batch, err as Error)
    }
    storage.batch(ops, this.writeOptions).then(
      () => this.written(batch, undefined),
      // Never taken for written: a store rejecting with no error still failed.
      (err: unknown) => this.written(batch, err instanceof Error ? err : new StorageError('ERR_STORAGE_UNAVAILABLE', `the seen-id record failed: ${String(err)}`))
    )
  }

  private written(batch: RecordBatch, err: Error | undefined): void {
    this.writing = undefined
    if (this.next) this.cut() // storage gets the next batch before this one's callers run
    batch.settle(err)
  }

  /** Drops records past their keep-until time; resolves with how many streams went. */
  async prune(): Promise<number> {
    const now = this.now()
    let dropped = 0
    for (const [sender, streams] of this.senders) {
      for (const [stream, rec] of streams) {
        if (rec.until <= now) {
          streams.delete(stream)
          dropped++
          this.dirty.add(sender)
        }
      }
      if (streams.size === 0) this.senders.delete(sender)
    }
    if (dropped) await this.write().promise
    return dropped
  }

  /** Senders with a record in memory (stats, tests). */
  get size(): number { return this.senders.size }

  private evictSender(): void {
    let victim: string | undefined
    let earliest = Infinity
    for (const [sender, streams] of this.senders) {
      const latest = Math.max(...[...streams.values()].map((r) => r.until))
      if (latest < earliest) {
        earliest = latest
        victim = sender
      }
    }
    if (victim !== undefined) {
      this.senders.delete(victim)
      this.dirty.add(victim)
    }
  }

  /** `seen.<sender>`, made once per sender with a record. */
  private keyOf(sender: string): string {
    let key = this.keys.get(sender)
    if (key === undefined) this.keys.set(sender, (key = PREFIX + sender))
    return key
  }

  private dirtyOps(): BatchOp[] {
    const ops: BatchOp[] = []
    for (const sender of this.dirty) {
      const streams = this.senders.get(sender)
      if (streams) ops.push({ type: 'put', key: this.keyOf(sender), value: encode(streams) })
      else {
        this.keys.delete(sender)
        ops.push({ type: 'del', key: PREFIX + sender })
      }
    }
    this.dirty.clear()
    return ops
  }

  /** Writes what is pending; later records reject with ERR_CLOSED. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    await (this.next ?? this.writing)?.promise.catch(() => {}) // the next is written after the one being written
  }
}

/** Drops the stream kept the shortest; returns its record. */
function evictEarliest(streams: Map<string, StreamRecord>): StreamRecord | undefined {
  let victim: string | undefined
  let earliest = Infinity
  for (const [stream, rec] of streams) {
    if (rec.until < earliest) {
      earliest = rec.until
      victim = stream
    }
  }
  if (victim === undefined) return undefined
  const rec = streams.get(victim)
  streams.delete(victim)
  return rec
}

/** The JSON text of a sender's record, built directly (written once per batch and sender; keys are hex, numbers finite). */
function encode(streams: Map<string, StreamRecord>): string {
  if (streams.size === 1) {
    // The usual record: one stream, every seq of its window handled. One expression, fewer
    // intermediate strings (written per batch, so per message in a ping-pong).
    const [stream, r] = streams.entries().next().value as [string, StreamRecord]
    if (r.bits === undefined && Number.isFinite(r.until)) return '{"' + stream + '":[' + r.high + ',' + r.until + ']}'
  }
  let out = '{'
  for (const [stream, r] of streams) {
    if (out.length > 1) out += ','
    // A finite number's text is its JSON (String() is the cheaper call); until is finite always.
    out += `"${stream}":[${r.high},${Number.isFinite(r.until) ? String(r.until) : JSON.stringify(r.until)}`
    out += r.bits ? `,"${Buffer.from(r.bits.buffer, r.bits.byteOffset, r.bits.byteLength).toString('base64')}"]` : ']'
  }
  return out + '}'
}

function decode(value: string, window: number): Map<string, StreamRecord> | null {
  try {
    const o = JSON.parse(value) as Record<string, unknown>
    if (!o || typeof o !== 'object' || Array.isArray(o)) return null
    const out = new Map<string, StreamRecord>()
    for (const [stream, rec] of Object.entries(o)) {
      if (!isStreamId(stream) || !Array.isArray(rec) || (rec.length !== 2 && rec.length !== 3)) return null
      const [high, until, b64] = rec as unknown[]
      if (!Number.isSafeInteger(high) || (high as number) < 0 || typeof until !== 'number') return null
      const r: StreamRecord = { high: high as number, until, bits: undefined, unseen: 0 }
      if (rec.length === 3) {
        if (typeof b64 !== 'string') return null
        const bits = new Uint8Array(Buffer.from(b64, 'base64'))
        if (bits.length !== window / 8) return null
        r.bits = bits
        for (let x = Math.max(0, r.high - window + 1); x <= r.high; x++) if (!getBit(bits, x % window)) r.unseen++
        if (r.unseen === 0) r.bits = undefined
      }
      out.set(stream, r)
    }
    return out
  } catch {
    return null
  }
}
