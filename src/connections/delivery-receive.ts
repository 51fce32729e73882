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
 * Cost per message: the records of one storage batch share one promise (seen-ids.ts), and the
 * ids handled from one sender while it is written wait in one {@link Pending}: 16 bytes each in
 * one buffer, no promise, closure or id text kept per message. What lives until the batch is
 * written is what survives the young generation's collections, so per-message objects there were
 * promoted and piled up in a flood (hundreds of MiB before a full collection).
 *
 * Bound: at most limits.maxHeldAckIds ids per peer wait for a record (a sender of ours keeps at
 * most maxQueuedMessages unacknowledged); past it the channel closes (counted as notReading, like
 * ACKs held for a peer that does not read).
 */
import { ProtocolError } from '../errors.js'
import type { Logger } from '../logger.js'
import { formatMessageId } from '../storage/message-id.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import { SeenIds } from '../storage/seen-ids.js'
import { AckList } from './ack-list.js'
import type { Channel } from './channel.js'
import type { ConnectionContext, Flushing } from './context.js'
import type { DataFrame } from './frames.js'
import type { Peer } from './peer.js'

/** Bytes of a message id on the wire (8 of stream, 8 of seq). */
const ID_BYTES = 16

/** The ids from one sender whose ACKs wait for one storage batch (their records, or older ones). */
interface Pending {
  readonly written: Promise<void>
  readonly peer: Peer
  /** Of them, handed to the handlers (counted in peer.recording). */
  handled: number
  /** The ids, back to back. */
  ids: Buffer
  count: number
  /** The channels they came in on, as runs: ids [ends[i-1], ends[i]) came on vias[i]. */
  readonly vias: Channel[]
  readonly ends: number[]
}

export class DurableReceiving {
  private readonly ctx: ConnectionContext
  private readonly flushing: Flushing
  private seen: SeenIds | undefined
  /** Per sender: the ids waiting for the latest batch, so a resend's ACK never overtakes a record. */
  private readonly pending = new Map<string, Pending>()

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
    const stream = raw.toString('hex', 0, 8)
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
    const written = seen.recordSeq(sender, stream, seq, frame.expiresAt ?? Infinity)
    if (pending === undefined || pending.written !== written) {
      // The first id of this batch from this sender: one reaction for all of them.
      const p: Pending = { written, peer, handled: 0, ids: Buffer.allocUnsafe(ID_BYTES), count: 0, vias: [], ends: [] }
      this.pending.set(sender, p)
      written.then(
        () => this.settle(p, undefined),
        (err: unknown) => this.settle(p, err ?? new Error('the record failed'))
      )
      pending = p
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
    let at = p.count * ID_BYTES
    if (at + ID_BYTES > p.ids.length) {
      const grown = Buffer.allocUnsafe(p.ids.length * 2)
      p.ids.copy(grown, 0, 0, at)
      p.ids = grown
    }
    id.copy(p.ids, at, 0, ID_BYTES)
    at = ++p.count
    const last = p.vias.length - 1
    if (last >= 0 && p.vias[last] === via) p.ends[last] = at
    else {
      p.vias.push(via)
      p.ends.push(at)
    }
    p.peer.awaitingRecord++
  }

  /** The batch holding `p`'s records is written (or failed: `err`): their ACKs go now. */
  private settle(p: Pending, err: unknown): void {
    const peer = p.peer
    if (this.pending.get(peer.signId) === p) this.pending.delete(peer.signId)
    peer.recording -= p.handled
    peer.awaitingRecord -= p.count
    if (err === undefined) {
      let from = 0
      for (let r = 0; r < p.vias.length; r++) {
        const via = p.vias[r] as Channel
        const end = p.ends[r] as number
        if (via.state !== 'closed') {
          let list = peer.pendingAcks.get(via)
          if (!list) peer.pendingAcks.set(via, (list = new AckList()))
          for (let i = from; i < end; i++) list.push(p.ids, i * ID_BYTES)
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
   * Resolves once the ids handled from `sender` so far are recorded (never rejects). Looks after
   * a microtask, so that a handler calling it sees the record of its own message started.
   */
  async recorded(sender: string): Promise<void> {
    await null
    await this.pending.get(sender)?.written.catch(() => {})
  }

  /** Writes what is pending. Idempotent. */
  async close(): Promise<void> {
    await this.seen?.close()
  }
}
