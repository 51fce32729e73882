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
 */
import type { Logger } from '../logger.js'
import { formatMessageId } from '../storage/message-id.js'
import type { PlatformStorage } from '../storage/platform-storage.js'
import { SeenIds } from '../storage/seen-ids.js'
import type { ConnectionContext, Flushing } from './context.js'
import type { DataFrame } from './frames.js'
import type { Peer } from './peer.js'

export class DurableReceiving {
  private readonly ctx: ConnectionContext
  private readonly flushing: Flushing
  private seen: SeenIds | undefined
  /** Per sender: the last record write, so a duplicate's ACK never overtakes it. */
  private readonly lastRecord = new Map<string, Promise<void>>()

  constructor(ctx: ConnectionContext, flushing: Flushing) {
    this.ctx = ctx
    this.flushing = flushing
  }

  /** Loads the record of ids seen (storage open). */
  async open(storage: PlatformStorage, now: () => number, sync: boolean | undefined): Promise<void> {
    const logger: Logger = this.ctx.logger
    this.seen = await SeenIds.open({ storage, now, sync, onCorrupt: (err, key) => logger.warn({ err, key }, 'seen ids: a damaged record was dropped') })
  }

  /** A durable DATA frame from `peer`: hand it over unless seen, then `ack()` once recorded. */
  receive(peer: Peer, frame: DataFrame, ack: () => void): void {
    const seen = this.seen
    if (!seen) return // not open: no ACK, the sender resends
    const sender = peer.signId
    const raw = frame.id
    const id = formatMessageId(raw.toString('hex', 0, 8), Number(raw.readBigUInt64BE(8)))
    const expired = frame.expiresAt !== undefined && frame.expiresAt < Date.now()
    if (expired || seen.has(sender, id)) {
      // Handled before (or too late): ACK, but never ahead of the record that makes it so.
      const last = this.lastRecord.get(sender)
      if (last) void last.then(ack, () => {})
      else ack()
      return
    }
    const host = this.ctx.host
    peer.recording++ // what the handlers send back waits for this record (send.ts scheduleWrite)
    try {
      host.deliver({ sender, protocol: frame.protocol, topic: frame.topic, scope: host.scopeOf(sender), payload: frame.payload, id })
    } catch (err) {
      peer.recording--
      throw err
    }
    const written = seen.record(sender, id, frame.expiresAt ?? Infinity)
    this.lastRecord.set(sender, written)
    written.then(
      () => {
        if (this.lastRecord.get(sender) === written) this.lastRecord.delete(sender)
        peer.recording--
        ack()
        if (peer.writeDeferred) this.flushing.scheduleWrite(peer, true)
      },
      (err: unknown) => {
        if (this.lastRecord.get(sender) === written) this.lastRecord.delete(sender)
        peer.recording--
        if (peer.writeDeferred) this.flushing.scheduleWrite(peer, true)
        if (!this.ctx.closed) this.ctx.logger.error({ err, sender }, 'cannot record a message id: not acknowledged')
      }
    )
  }

  /**
   * Resolves once the ids handled from `sender` so far are recorded (never rejects). Looks after
   * a microtask, so that a handler calling it sees the record of its own message started.
   */
  async recorded(sender: string): Promise<void> {
    await null
    await this.lastRecord.get(sender)?.catch(() => {})
  }

  /** Writes what is pending. Idempotent. */
  async close(): Promise<void> {
    await this.seen?.close()
  }
}
