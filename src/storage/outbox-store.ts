/**
 * The persistent outbox: messages waiting for a peer, kept in storage (not in the heap) until
 * acknowledged, cancelled or expired. The delivery code above appends, lists a destination's
 * pending messages in order, and removes one on its acknowledgement.
 *
 * Durability: `append()` resolves once the message is in storage (group commit: the appends of
 * one turn share one batch, see group-commit.ts). With the default store that means written to
 * the OS in one atomic LevelDB batch: it survives a crash of the process (SIGKILL), and with
 * `sync: true` a power loss. A kad-fs store has no batch: each key is its own file write, not
 * atomic together, and slower.
 *
 * Memory: only counters per destination (messages, bytes), the set of removals in flight and the
 * next sequence number; listing reads storage. Opening scans the small expiry index once.
 *
 * Keys (every part fixed-width hex, so key order is number order):
 * - `outbox.m.<dest>.<seq>.<expiresAt>`: the message, JSON `{i, t, p, c, b}` (id, topic,
 *   protocol, createdAt, payload as base64); key order = send order per destination;
 * - `outbox.x.<expiresAt>.<seq>.<dest>`: its size in bytes; key order = expiry order;
 * - `outbox.meta`: JSON `{stream, next}`: the id stream and the next sequence number.
 * Either key of a message names the other, so a damaged one can be removed with its pair.
 */
import { DeliveryError, InvalidArgumentError, StateError, StorageError } from '../errors.js'
import { GroupCommit } from './group-commit.js'
import { formatMessageId, isStreamId, newStreamId, parseMessageId } from './message-id.js'
import type { PlatformStorage } from './platform-storage.js'
import type { BatchOp } from './store.js'

/** Defaults of the bounds; every one can be set in {@link OutboxStoreOptions}. */
export const OUTBOX_DEFAULTS = {
  maxMessagesPerDestination: 100_000,
  maxBytesPerDestination: 256 * 1024 * 1024,
  maxMessages: 2_000_000,
  maxBytes: 2 * 1024 * 1024 * 1024
} as const

const MAIN = 'outbox.m.'
const INDEX = 'outbox.x.'
const META = 'outbox.meta'
/** Above every character a key part uses ('0-9a-f', '.', base64): ends a prefix range. */
const PREFIX_END = '~'
const SCAN_CHUNK = 4096
const HEX_WIDTH = 14

/** A message as it is appended. */
export interface OutboxInput {
  /** signId of the peer (no '.'). */
  destination: string
  topic: string
  protocol: string
  payload: Uint8Array
  /** When it expires, ms since the epoch (the store's clock). */
  expiresAt: number
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
  /** Run {@link OutboxStore.expire} this often (ms); default: never by itself. */
  expiryIntervalMs?: number
  /** A message expired and was removed: `err.code === 'ERR_EXPIRED'`. */
  onExpired?: (message: OutboxEntry & { topic?: string }, err: DeliveryError) => void
  /** A stored entry does not decode: it was removed (`err.code === 'ERR_STORAGE_CORRUPT'`). */
  onCorrupt?: (err: StorageError, key: string) => void
}

interface Counter {
  messages: number
  bytes: number
}

function hex(n: number): string {
  return n.toString(16).padStart(HEX_WIDTH, '0')
}

function mainKey(dest: string, seq: number, expiresAt: number): string {
  return `${MAIN}${dest}.${hex(seq)}.${hex(expiresAt)}`
}

function indexKey(dest: string, seq: number, expiresAt: number): string {
  return `${INDEX}${hex(expiresAt)}.${hex(seq)}.${dest}`
}

const HEX_RE = /^[0-9a-f]{14}$/

function parseMainKey(key: string): { dest: string; seq: number; expiresAt: number } | null {
  const parts = key.slice(MAIN.length).split('.')
  if (parts.length !== 3 || !parts[0] || !HEX_RE.test(parts[1] ?? '') || !HEX_RE.test(parts[2] ?? '')) return null
  return { dest: parts[0], seq: parseInt(parts[1] as string, 16), expiresAt: parseInt(parts[2] as string, 16) }
}

function parseIndexKey(key: string): { dest: string; seq: number; expiresAt: number } | null {
  const parts = key.slice(INDEX.length).split('.')
  if (parts.length !== 3 || !parts[2] || !HEX_RE.test(parts[0] ?? '') || !HEX_RE.test(parts[1] ?? '')) return null
  return { dest: parts[2], seq: parseInt(parts[1] as string, 16), expiresAt: parseInt(parts[0] as string, 16) }
}

interface StoredRecord {
  i: string
  t: string
  p: string
  c: number
  b: string
}

function decodeRecord(value: string): StoredRecord | null {
  try {
    const r = JSON.parse(value) as Partial<StoredRecord>
    if (typeof r.i !== 'string' || !parseMessageId(r.i)) return null
    if (typeof r.t !== 'string' || typeof r.p !== 'string' || typeof r.b !== 'string' || typeof r.c !== 'number') return null
    return r as StoredRecord
  } catch {
    return null
  }
}

export class OutboxStore {
  private readonly storage: PlatformStorage
  private readonly now: () => number
  private readonly limits: { -readonly [K in keyof typeof OUTBOX_DEFAULTS]: number }
  private readonly commit: GroupCommit
  private readonly counters = new Map<string, Counter>()
  private readonly total: Counter = { messages: 0, bytes: 0 }
  /** Main keys whose removal is queued and not yet written: hidden from listings, not removed twice. */
  private readonly removing = new Set<string>()
  private stream = ''
  private nextSeq = 0
  private writtenNextSeq = -1
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private readonly options: OutboxStoreOptions

  private constructor(options: OutboxStoreOptions) {
    this.options = options
    this.storage = options.storage
    this.now = options.now ?? Date.now
    this.limits = {
      maxMessagesPerDestination: options.maxMessagesPerDestination ?? OUTBOX_DEFAULTS.maxMessagesPerDestination,
      maxBytesPerDestination: options.maxBytesPerDestination ?? OUTBOX_DEFAULTS.maxBytesPerDestination,
      maxMessages: options.maxMessages ?? OUTBOX_DEFAULTS.maxMessages,
      maxBytes: options.maxBytes ?? OUTBOX_DEFAULTS.maxBytes
    }
    this.commit = new GroupCommit(options.storage, { sync: options.sync, beforeBatch: () => this.metaOps() })
  }

  /**
   * Opens the outbox in an open storage: reads its id stream and rebuilds the counters from the
   * expiry index. Damaged index entries are reported (`onCorrupt`) and removed with their message.
   */
  static async open(options: OutboxStoreOptions): Promise<OutboxStore> {
    const outbox = new OutboxStore(options)
    await outbox.load()
    if (options.expiryIntervalMs !== undefined) {
      outbox.timer = setInterval(() => {
        outbox.expire().catch((err: unknown) => outbox.options.onCorrupt?.(err as StorageError, INDEX))
      }, options.expiryIntervalMs)
      outbox.timer.unref()
    }
    return outbox
  }

  private async load(): Promise<void> {
    const meta = await this.storage.get(META)
    let maxSeq = -1
    if (meta !== undefined) {
      try {
        const m = JSON.parse(meta) as { stream?: unknown; next?: unknown }
        if (isStreamId(m.stream) && Number.isSafeInteger(m.next)) {
          this.stream = m.stream
          this.nextSeq = m.next as number
        }
      } catch {
        // handled below: a new stream keeps ids unique
      }
      if (!this.stream) this.reportCorrupt(META, 'the outbox id record does not decode; a new id stream is started')
    }
    if (!this.stream) this.stream = newStreamId()
    await this.scan(INDEX, INDEX + PREFIX_END, async (key, value) => {
      const k = parseIndexKey(key)
      const bytes = Number(value)
      if (!k || !Number.isSafeInteger(bytes) || bytes < 0) {
        this.reportCorrupt(key, 'an outbox index entry does not decode; it is removed with its message')
        await this.commit.write(k ? [{ type: 'del', key }, { type: 'del', key: mainKey(k.dest, k.seq, k.expiresAt) }] : [{ type: 'del', key }])
        return
      }
      this.count(k.dest, 1, bytes)
      if (k.seq > maxSeq) maxSeq = k.seq
    })
    if (maxSeq >= this.nextSeq) this.nextSeq = maxSeq + 1
  }

  /** Calls `fn` for each entry in `[gte, lt)`, reading storage a chunk at a time. */
  private async scan(gte: string, lt: string, fn: (key: string, value: string) => Promise<void> | void, values = true): Promise<void> {
    let from = gte
    for (;;) {
      const chunk = await this.storage.range({ gte: from, lt, limit: SCAN_CHUNK, values })
      for (const e of chunk) await fn(e.key, e.value)
      if (chunk.length < SCAN_CHUNK) return
      from = (chunk[chunk.length - 1] as { key: string }).key + '\u0000'
    }
  }

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

  private metaOps(): BatchOp[] {
    if (this.writtenNextSeq === this.nextSeq) return []
    this.writtenNextSeq = this.nextSeq
    return [{ type: 'put', key: META, value: JSON.stringify({ stream: this.stream, next: this.nextSeq }) }]
  }

  private reportCorrupt(key: string, what: string): void {
    const err = new StorageError('ERR_STORAGE_CORRUPT', `${what} (key ${JSON.stringify(key).slice(0, 200)})`)
    this.options.onCorrupt?.(err, key)
  }

  /**
   * Stores a message; resolves with its entry (and durable id) once it is in storage.
   * @throws InvalidArgumentError for a malformed message; DeliveryError `ERR_QUEUE_FULL` past a
   * bound (per destination or in total, messages or bytes); StateError after close().
   */
  append(input: OutboxInput): Promise<OutboxEntry> {
    if (this.closed) return Promise.reject(new StateError('ERR_CLOSED', 'the outbox is closed'))
    const { destination, topic, protocol, payload, expiresAt } = input ?? ({} as OutboxInput)
    if (typeof destination !== 'string' || destination.length === 0 || destination.includes('.') || destination.length > 200) {
      return Promise.reject(new InvalidArgumentError('an outbox destination must be a signId'))
    }
    if (typeof topic !== 'string' || typeof protocol !== 'string') return Promise.reject(new InvalidArgumentError('topic and protocol must be strings'))
    if (!(payload instanceof Uint8Array)) return Promise.reject(new InvalidArgumentError('an outbox payload must be bytes'))
    if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) return Promise.reject(new InvalidArgumentError('expiresAt must be a time in ms'))
    const bytes = payload.length + topic.length + protocol.length
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
    if (full) return Promise.reject(new DeliveryError('ERR_QUEUE_FULL', `the outbox is full: at most ${full}`))
    const seq = this.nextSeq++
    const id = formatMessageId(this.stream, seq)
    const record: StoredRecord = { i: id, t: topic, p: protocol, c: this.now(), b: Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('base64') }
    // Counted now, so concurrent appends see the bound; given back if the write fails.
    this.count(destination, 1, bytes)
    return this.commit
      .write([
        { type: 'put', key: mainKey(destination, seq, expiresAt), value: JSON.stringify(record) },
        { type: 'put', key: indexKey(destination, seq, expiresAt), value: String(bytes) }
      ])
      .then(
        () => ({ id, destination, seq, expiresAt, bytes }),
        (err: unknown) => {
          this.count(destination, -1, -bytes)
          throw err
        }
      )
  }

  /**
   * Up to `limit` pending messages for `destination`, oldest first, starting after `afterSeq`.
   * Expired ones are left out (see {@link expire}); damaged ones are reported and removed.
   */
  async pending(destination: string, options: { limit?: number; afterSeq?: number } = {}): Promise<OutboxMessage[]> {
    const limit = options.limit ?? 100
    const prefix = `${MAIN}${destination}.`
    const gte = options.afterSeq === undefined ? prefix : `${prefix}${hex(options.afterSeq + 1)}`
    const out: OutboxMessage[] = []
    const now = this.now()
    let from = gte
    while (out.length < limit) {
      const chunk = await this.storage.range({ gte: from, lt: prefix + PREFIX_END, limit: Math.min(SCAN_CHUNK, limit - out.length + this.removing.size) })
      for (const { key, value } of chunk) {
        if (out.length >= limit) break
        if (this.removing.has(key)) continue
        const k = parseMainKey(key)
        const r = decodeRecord(value)
        if (!k || !r) {
          await this.removeDamaged(key, k)
          continue
        }
        if (k.expiresAt <= now) continue
        const payload = Buffer.from(r.b, 'base64')
        out.push({ id: r.i, destination, seq: k.seq, expiresAt: k.expiresAt, bytes: payload.length + r.t.length + r.p.length, topic: r.t, protocol: r.p, payload, createdAt: r.c })
      }
      if (chunk.length === 0 || out.length >= limit) break
      from = (chunk[chunk.length - 1] as { key: string }).key + '\u0000'
    }
    return out
  }

  private async removeDamaged(key: string, k: { dest: string; seq: number; expiresAt: number } | null): Promise<void> {
    this.reportCorrupt(key, 'an outbox message does not decode; it is removed')
    if (!k) {
      await this.commit.write([{ type: 'del', key }])
      return
    }
    await this.removeKeys(k.dest, k.seq, k.expiresAt)
  }

  /** Removes a message by its keys; its size comes from the index. False when it is not there. */
  private async removeKeys(dest: string, seq: number, expiresAt: number): Promise<boolean> {
    const main = mainKey(dest, seq, expiresAt)
    if (this.removing.has(main)) return false
    const idx = indexKey(dest, seq, expiresAt)
    const size = await this.storage.get(idx)
    if (size === undefined || this.removing.has(main)) return false
    const bytes = Number(size) || 0
    this.removing.add(main)
    this.count(dest, -1, -bytes)
    try {
      await this.commit.write([
        { type: 'del', key: main },
        { type: 'del', key: idx }
      ])
    } catch (err) {
      this.count(dest, 1, bytes)
      throw err
    } finally {
      this.removing.delete(main)
    }
    return true
  }

  /**
   * Removes a delivered message (on its acknowledgement); resolves true once the removal is
   * written, false when it was not pending (already removed, or being removed).
   */
  remove(message: Pick<OutboxEntry, 'destination' | 'seq' | 'expiresAt'>): Promise<boolean> {
    if (this.closed) return Promise.reject(new StateError('ERR_CLOSED', 'the outbox is closed'))
    return this.removeKeys(message.destination, message.seq, message.expiresAt)
  }

  /** Removes a pending message by destination and id (user cancel); false when not pending. */
  async cancel(destination: string, id: string): Promise<boolean> {
    if (this.closed) throw new StateError('ERR_CLOSED', 'the outbox is closed')
    const parts = parseMessageId(id)
    if (!parts) return false
    const prefix = `${MAIN}${destination}.${hex(parts.seq)}.`
    const [hit] = await this.storage.range({ gte: prefix, lt: prefix + PREFIX_END, limit: 1, values: false })
    const k = hit ? parseMainKey(hit.key) : null
    return k ? this.removeKeys(k.dest, k.seq, k.expiresAt) : false
  }

  /**
   * Removes every message whose `expiresAt` has passed (by the store's clock), reporting each to
   * `onExpired` with a DeliveryError `ERR_EXPIRED`. Resolves with how many expired.
   */
  async expire(): Promise<number> {
    if (this.closed) return 0
    const now = this.now()
    const found: Array<{ dest: string; seq: number; expiresAt: number; bytes: number }> = []
    await this.scan(INDEX, INDEX + hex(now + 1), (key, value) => {
      const k = parseIndexKey(key)
      if (k) found.push({ ...k, bytes: Number(value) || 0 })
    })
    let expired = 0
    for (const k of found) {
      const record = await this.storage.get(mainKey(k.dest, k.seq, k.expiresAt))
      const r = record === undefined ? null : decodeRecord(record)
      if (!(await this.removeKeys(k.dest, k.seq, k.expiresAt))) continue
      expired++
      const id = r?.i ?? formatMessageId(this.stream, k.seq)
      const err = new DeliveryError('ERR_EXPIRED', `message ${id} to ${k.dest} expired before it was delivered`)
      this.options.onExpired?.({ id, destination: k.dest, seq: k.seq, expiresAt: k.expiresAt, bytes: k.bytes, topic: r?.t }, err)
    }
    return expired
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

  /** Stored ids are `<stream>-<seq>`; this store's stream. */
  get streamId(): string {
    return this.stream
  }

  /** Writes what is queued, stops the expiry timer; later calls reject with ERR_CLOSED. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    await this.commit.close()
  }
}
