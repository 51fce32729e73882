/**
 * The receiver's persistent record of message ids it has handled, so a message resent after a
 * lost acknowledgement or a restart reaches the handlers once.
 *
 * Compact because of the id's shape (message-id.ts): per sender and id stream, only the highest
 * `seq` handled, since a sender sends each destination's messages in `seq` order (a resend is
 * always of a message at or below what was already handled). An id that is not of our shape is
 * never recorded and never counted as seen.
 *
 * Bounded by expiry: a stream's record is kept until the latest `expiresAt` of a message handled
 * in it, plus {@link SEEN_DEFAULTS.skewMs} for clock skew, but never longer than
 * `maxHoldMs` from when it was recorded; after that no resend of it can still come (the sender
 * drops expired messages). Also at most `maxStreamsPerSender` streams per sender and
 * `maxSenders` senders (the record that expires first makes room).
 *
 * Storage: `seen.<sender>` = JSON `{ "<stream>": [highSeq, keepUntil], ... }`, written by group
 * commit (all senders recorded in one turn go in one batch). `record()` resolves once written:
 * acknowledge only then.
 */
import { StateError, StorageError } from '../errors.js'
import { GroupCommit } from './group-commit.js'
import { isStreamId, parseMessageId } from './message-id.js'
import type { PlatformStorage } from './platform-storage.js'
import type { BatchOp } from './store.js'

export const SEEN_DEFAULTS = {
  /** Kept past a message's expiry, for clocks that differ. */
  skewMs: 10 * 60_000,
  /** Longest a record is kept, whatever expiry a sender claims (30 days). */
  maxHoldMs: 30 * 24 * 3_600_000,
  maxStreamsPerSender: 4,
  maxSenders: 100_000
} as const

const PREFIX = 'seen.'

export interface SeenIdsOptions {
  storage: PlatformStorage
  now?: () => number
  skewMs?: number
  maxHoldMs?: number
  maxStreamsPerSender?: number
  maxSenders?: number
  sync?: boolean
  /** A stored record does not decode: it is dropped (resends from that sender may be seen again). */
  onCorrupt?: (err: StorageError, key: string) => void
}

/** [highest seq handled, keep until (ms)]. */
type StreamRecord = [number, number]

export class SeenIds {
  private readonly senders = new Map<string, Map<string, StreamRecord>>()
  private readonly dirty = new Set<string>()
  private readonly commit: GroupCommit
  private readonly now: () => number
  private readonly o: Required<Pick<SeenIdsOptions, 'skewMs' | 'maxHoldMs' | 'maxStreamsPerSender' | 'maxSenders'>>
  private closed = false

  private constructor(private readonly options: SeenIdsOptions) {
    this.now = options.now ?? Date.now
    this.o = {
      skewMs: options.skewMs ?? SEEN_DEFAULTS.skewMs,
      maxHoldMs: options.maxHoldMs ?? SEEN_DEFAULTS.maxHoldMs,
      maxStreamsPerSender: options.maxStreamsPerSender ?? SEEN_DEFAULTS.maxStreamsPerSender,
      maxSenders: options.maxSenders ?? SEEN_DEFAULTS.maxSenders
    }
    this.commit = new GroupCommit(options.storage, { sync: options.sync, beforeBatch: () => this.dirtyOps() })
  }

  /** Loads the records from an open storage, dropping expired ones; damaged ones are reported. */
  static async open(options: SeenIdsOptions): Promise<SeenIds> {
    const seen = new SeenIds(options)
    const now = seen.now()
    for (const { key, value } of await options.storage.range({ gte: PREFIX, lt: PREFIX + '\uffff' })) {
      const sender = key.slice(PREFIX.length)
      const streams = decode(value)
      if (!streams) {
        options.onCorrupt?.(new StorageError('ERR_STORAGE_CORRUPT', `the seen-id record of ${sender} does not decode; it is dropped, so a message from that sender may reach the handlers again`), key)
        seen.dirty.add(sender)
        continue
      }
      for (const [stream, rec] of streams) if (rec[1] <= now) streams.delete(stream)
      if (streams.size) seen.senders.set(sender, streams)
      else seen.dirty.add(sender)
    }
    if (seen.dirty.size) await seen.commit.write([])
    return seen
  }

  /** True when `id` from `sender` was recorded as handled. */
  has(sender: string, id: string): boolean {
    const parts = parseMessageId(id)
    if (!parts) return false
    const rec = this.senders.get(sender)?.get(parts.stream)
    return rec !== undefined && parts.seq <= rec[0] && rec[1] > this.now()
  }

  /**
   * Records `id` from `sender` as handled, kept until `expiresAt` (plus skew, at most maxHoldMs
   * from now). Resolves once written; a foreign id resolves at once and records nothing.
   */
  record(sender: string, id: string, expiresAt: number): Promise<void> {
    if (this.closed) return Promise.reject(new StateError('ERR_CLOSED', 'the seen-id record is closed'))
    const parts = parseMessageId(id)
    if (!parts) return Promise.resolve()
    const now = this.now()
    const until = Math.min(Number.isFinite(expiresAt) ? expiresAt : Infinity, now + this.o.maxHoldMs) + this.o.skewMs
    let streams = this.senders.get(sender)
    if (!streams) {
      if (this.senders.size >= this.o.maxSenders) this.evictSender()
      streams = new Map()
      this.senders.set(sender, streams)
    }
    const rec = streams.get(parts.stream)
    if (rec) {
      if (parts.seq > rec[0]) rec[0] = parts.seq
      if (until > rec[1]) rec[1] = until
    } else {
      if (streams.size >= this.o.maxStreamsPerSender) evictEarliest(streams)
      streams.set(parts.stream, [parts.seq, until])
    }
    this.dirty.add(sender)
    return this.commit.write([])
  }

  /** Drops records past their keep-until time; resolves with how many streams went. */
  async prune(): Promise<number> {
    const now = this.now()
    let dropped = 0
    for (const [sender, streams] of this.senders) {
      for (const [stream, rec] of streams) {
        if (rec[1] <= now) {
          streams.delete(stream)
          dropped++
          this.dirty.add(sender)
        }
      }
      if (streams.size === 0) this.senders.delete(sender)
    }
    if (dropped) await this.commit.write([])
    return dropped
  }

  /** Senders with a record in memory (stats, tests). */
  get size(): number {
    return this.senders.size
  }

  private evictSender(): void {
    let victim: string | undefined
    let earliest = Infinity
    for (const [sender, streams] of this.senders) {
      const latest = Math.max(...[...streams.values()].map((r) => r[1]))
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

  private dirtyOps(): BatchOp[] {
    const ops: BatchOp[] = []
    for (const sender of this.dirty) {
      const streams = this.senders.get(sender)
      ops.push(streams ? { type: 'put', key: PREFIX + sender, value: JSON.stringify(Object.fromEntries(streams)) } : { type: 'del', key: PREFIX + sender })
    }
    this.dirty.clear()
    return ops
  }

  /** Writes what is pending; later records reject with ERR_CLOSED. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    await this.commit.close()
  }
}

function evictEarliest(streams: Map<string, StreamRecord>): void {
  let victim: string | undefined
  let earliest = Infinity
  for (const [stream, rec] of streams) {
    if (rec[1] < earliest) {
      earliest = rec[1]
      victim = stream
    }
  }
  if (victim !== undefined) streams.delete(victim)
}

function decode(value: string): Map<string, StreamRecord> | null {
  try {
    const o = JSON.parse(value) as Record<string, unknown>
    if (!o || typeof o !== 'object' || Array.isArray(o)) return null
    const out = new Map<string, StreamRecord>()
    for (const [stream, rec] of Object.entries(o)) {
      if (!isStreamId(stream) || !Array.isArray(rec) || rec.length !== 2 || !Number.isSafeInteger(rec[0]) || typeof rec[1] !== 'number') return null
      out.set(stream, [rec[0] as number, rec[1] as number])
    }
    return out
  } catch {
    return null
  }
}
