/**
 * Receiving messages from a sender's persistent outbox (DATA flag 4, see delivery.ts): each is
 * handed to the handlers once, across our restarts too, and acknowledged only once its id is
 * recorded in storage (storage/seen-ids.ts: per sender and id stream, the highest `seq` handled
 * and exactly which of the 4,096 below it were, so one that arrives late is not taken for a resend).
 *
 * What a crash can cause: a receiver killed after its handlers ran and before the record was
 * written sees that message once more (the sender resends it, never having had the ACK). The
 * record is kept until the message's expiry plus 10 minutes (at most 30 days): past that, no
 * resend of it can arrive, since the sender drops expired messages.
 *
 * Cost per message: the records of one storage batch share one listener (seen-ids.ts), and the
 * ids handled from one sender while it is written wait in one {@link Pending}: 16 bytes each in
 * one buffer, no promise, closure or id text kept per message. What lives until the batch is
 * written is what survives the young generation's collections, so per-message objects there were
 * promoted and piled up in a flood (hundreds of MiB before a full collection).
 *
 * Bound: at most limits.maxHeldAckIds ids per peer wait for a record (a sender of ours has at
 * most its outbox window, 1,024 by default, unacknowledged); past it the channel closes (counted
 * as notReading, like ACKs held for a peer that does not read).
 */
import { IdPrefixHex } from './id-prefix.js'
import { ProtocolError } from '../errors.js'
import type { Logger } from '../logger.js'
import { formatMessageId } from '../storage/message-id.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import { SeenIds, type RecordBatch, type RecordListener } from '../storage/seen-ids.js'
import { AckList } from './ack-list.js'
import type { Channel } from './channel.js'
import type { ConnectionContext, Flushing } from './context.js'
import type { DataFrame } from './frames.js'
import type { Peer } from './peer.js'

/** Bytes of a message id on the wire (8 of stream, 8 of seq). */
const ID_BYTES = 16

/** Spare {@link Pending}s kept for reuse (one per batch and sender otherwise: a message each in a ping-pong). */
const SPARE_PENDING = 8
/** A spare's id buffer is kept up to this size (a flood's big one is left to the collector). */
const SPARE_IDS_BYTES = 256 * ID_BYTES
/** Nor one whose runs of channels grew past this. */
const SPARE_RUNS = 16
/** Senders kept in `pending` with nothing waiting, at most (see settle). */
const PENDING_KEYS_KEPT = 256

/**
 * The ids from one sender whose ACKs wait for one storage batch (their records, or older ones).
 * Reused once settled, with its two reactions made once.
 */
class Pending implements RecordListener {
  written: RecordBatch | undefined
  peer: Peer | undefined
  /** Of them, handed to the handlers (counted in peer.recording). */
  handled = 0
  /** The ids, back to back. */
  ids = Buffer.allocUnsafe(4 * ID_BYTES)
  count = 0
  /**
   * The channels they came in on, as runs: ids [ends[i-1], ends[i]) came on vias[i], i < runs
   * (the arrays are reused: entries past `runs` are stale or cleared).
   */
  readonly vias: Array<Channel | undefined> = []
  readonly ends: number[] = []
  runs = 0
  private readonly settle: (p: Pending, err: Error | undefined) => void

  constructor(settle: (p: Pending, err: Error | undefined) => void) {
    this.settle = settle
  }

  /** The batch is written (or failed: `err`). */
  recorded(err: Error | undefined): void {
    this.settle(this, err)
  }
}

export class DurableReceiving {
  private readonly ctx: ConnectionContext
  private readonly flushing: Flushing
  private seen: SeenIds | undefined
  /** Per sender: the ids waiting for the latest batch, so a resend's ACK never overtakes a record. */
  private readonly pending = new Map<string, Pending | undefined>()
  private readonly spare: Pending[] = []
  private readonly settler = (p: Pending, err: Error | undefined): void => this.settle(p, err)
  private readonly streamHex = new IdPrefixHex()
  /** Whether the store writes a record batch after the turn (see recordNow), once known. */
  private writesLater = false
  private probed = false

  constructor(ctx: ConnectionContext, flushing: Flushing) {
    this.ctx = ctx
    this.flushing = flushing
  }

  /** Loads the record of ids seen (storage open). */
  async open(storage: PlatformStorage, now: () => number, sync: boolean | undefined): Promise<void> {
    const logger: Logger = this.ctx.logger
    this.seen = await SeenIds.open({ storage, now, sync, onCorrupt: (err, key) => logger.warn({ err, key }, 'seen ids: a damaged record was dropped') })
  }

  /**
   * A durable DATA frame from `peer` on `via`: hand it over unless seen; its ACK goes once its id
   * is recorded. True: a resend (or expired) with nothing of this sender being recorded, whose
   * ACK is due now (the caller sends it).
   */
  receive(peer: Peer, frame: DataFrame, via: Channel): boolean {
    const seen = this.seen
    if (!seen) return false // not open: no ACK, the sender resends
    const sender = peer.signId
    const raw = frame.id
    const stream = this.streamHex.of(raw)
    const seq = raw.readUInt32BE(8) * 0x1_0000_0000 + raw.readUInt32BE(12)
    let pending = this.pending.get(sender)
    const expired = frame.expiresAt !== undefined && frame.expiresAt < Date.now()
    if (expired || seen.hasSeq(sender, stream, seq)) {
      // Handled before (or too late): ACK, but never ahead of the record that makes it so.
      if (pending === undefined) return true
      if (this.overBound(peer, via)) return false
      this.add(pending, raw, via)
      return false
    }
    if (this.overBound(peer, via)) return false
    const host = this.ctx.host
    peer.recording++ // what the handlers send back waits for this record (send.ts scheduleWrite)
    try {
      host.deliver({ sender, protocol: frame.protocol, topic: frame.topic, scope: host.scopeOf(sender), payload: frame.payload, id: formatMessageId(stream, seq) })
    } catch (err) {
      peer.recording--
      throw err
    }
    const written = seen.markSeq(sender, stream, seq, frame.expiresAt ?? Infinity)
    if (pending === undefined || pending.written !== written) {
      // The first id of this batch from this sender: one listener for all of them.
      pending = this.spare.pop() ?? new Pending(this.settler)
      pending.written = written
      pending.peer = peer
      this.pending.set(sender, pending)
      written.listen(pending)
    }
    pending.handled++
    this.add(pending, raw, via)
    return false
  }

  /** Too many ids of `peer` wait for a record: `via` closes (no ACK: the sender resends). */
  private overBound(peer: Peer, via: Channel): boolean {
    if (peer.awaitingRecord < this.ctx.limits.maxHeldAckIds) return false
    if (via.state === 'closed') return true
    this.ctx.counts.notReading++
    const why = `${peer.awaitingRecord} messages wait for their record (at most ${this.ctx.limits.maxHeldAckIds})`
    this.ctx.logger.warn({ peer: peer.signId, remote: via.remote }, `closing a session: ${why}`)
    void via.close(new ProtocolError('ERR_LIMIT_REACHED', `${peer.signId} sends faster than its messages are recorded: ${why}`))
    return true
  }

  /** Keeps a copy of `id` (not a view: it would pin the packet it came in) to ACK on `via`. */
  private add(p: Pending, id: Buffer, via: Channel): void {
    const peer = p.peer as Peer
    let at = p.count * ID_BYTES
    if (at + ID_BYTES > p.ids.length) {
      const grown = Buffer.allocUnsafe(p.ids.length * 2)
      p.ids.copy(grown, 0, 0, at)
      p.ids = grown
    }
    const ids = p.ids
    for (let i = 0; i < ID_BYTES; i++) ids[at + i] = id[i] as number // 16 bytes: cheaper than Buffer.copy's call
    at = ++p.count
    const last = p.runs - 1
    if (last >= 0 && p.vias[last] === via) p.ends[last] = at
    else {
      p.vias[p.runs] = via
      p.ends[p.runs++] = at
    }
    peer.awaitingRecord++
  }

  /** The batch holding `p`'s records is written (or failed: `err`): their ACKs go now. */
  private settle(p: Pending, err: Error | undefined): void {
    const peer = p.peer as Peer
    // Left as undefined while few senders are kept: a delete then a set per message (a
    // ping-pong) made the map rehash every other message.
    if (this.pending.get(peer.signId) === p) {
      if (this.pending.size > PENDING_KEYS_KEPT) this.pending.delete(peer.signId)
      else this.pending.set(peer.signId, undefined)
    }
    peer.recording -= p.handled
    peer.awaitingRecord -= p.count
    try {
      this.release(peer, p, err)
    } finally {
      p.written = undefined
      p.peer = undefined
      for (let r = 0; r < p.runs; r++) p.vias[r] = undefined // no closed channel kept by a spare
      p.handled = p.count = p.runs = 0
      if (this.spare.length < SPARE_PENDING && p.ids.length <= SPARE_IDS_BYTES && p.vias.length <= SPARE_RUNS) this.spare.push(p)
    }
  }

  /** Queues `p`'s ACKs (written) or reports the failure; either way the peer's writes go on. */
  private release(peer: Peer, p: Pending, err: Error | undefined): void {
    if (err === undefined) {
      let from = 0
      for (let r = 0; r < p.runs; r++) {
        const via = p.vias[r] as Channel
        const end = p.ends[r] as number
        if (via.state !== 'closed') {
          let list = peer.pendingAcks.get(via)
          if (!list) peer.pendingAcks.set(via, (list = AckList.take()))
          list.pushMany(p.ids, from * ID_BYTES, end - from)
        }
        from = end
      }
      // Forced: the ACKs and what the handlers sent back leave together, at once.
      this.flushing.scheduleWrite(peer, true)
      return
    }
    if (peer.writeDeferred) this.flushing.scheduleWrite(peer, true)
    if (!this.ctx.closed) this.ctx.logger.error({ err, sender: peer.signId }, 'cannot record a message id: not acknowledged')
  }

  /**
   * Writes the ids recorded so far now, not after this turn's reads (see SeenIds.cut), where the
   * store writes at once (MemoryStore: the ACKs then go within the turn). A store that writes in
   * the background (LevelDB) tells of it only after the turn: cut early, the rest of the turn's
   * ids would wait for that write and then need one of their own. The first early cut tells
   * which: its batch still unwritten once the turn is over, none follows. False once known so
   * (or not open): nothing was cut, and nothing waits on a cut (receive.ts yields only on true).
   */
  recordNow(peer: Peer): boolean {
    const seen = this.seen
    if (!seen || this.writesLater) return false
    const p = this.pending.get(peer.signId)
    const batch = p?.written
    seen.cut()
    if (this.probed || !p || !batch) return true
    this.probed = true
    setImmediate(() => {
      this.writesLater = p.written === batch
    }).unref()
    return true
  }

  /**
   * Resolves once the ids handled from `sender` so far are recorded (never rejects). Looks after
   * a microtask, so that a handler calling it sees the record of its own message started.
   */
  async recorded(sender: string): Promise<void> {
    await null
    await this.pending.get(sender)?.written?.promise.catch(() => {})
  }

  /** Writes what is pending. Idempotent. */
  async close(): Promise<void> {
    await this.seen?.close()
  }
}
