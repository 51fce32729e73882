/**
 * Receiving: the frames that come in on a peer's channels. A durable DATA frame (from the
 * sender's outbox) goes to delivery.ts: handed over once, ACKed once its id is recorded in
 * storage. Other DATA is acknowledged (the ACK rides
 * in the next batch, on the channel the DATA came in on), delivered to the host once (ids seen
 * lately are dropped: a resend after a reconnect), and dropped when expired. An ACK settles our
 * messages in flight. A PING only proves the channel alive. A frame that does not decode closes
 * that channel (the peer is broken or hostile); the node carries on.
 *
 * Budgets (limits.ts): a stranger's frames are bounded by strangerMaxFrameBytes (circles:
 * maxFrameBytes), and a stranger's frame, once begun, must be complete within
 * strangerFrameDeadlineMs: partial frames cannot pin memory. Each closure is counted.
 *
 * A large read of durable frames whose replies wait for their record is handled in steps (see
 * FRAMES_BEFORE_YIELD), the rest queued (bounded) behind the loop's I/O.
 */
import { IdPrefixHex } from './id-prefix.js'
import { ProtocolError, describe } from '../errors.js'
import { AckList } from './ack-list.js'
import type { Channel } from './channel.js'
import { formatMessageId } from '../storage/message-id.js'
import type { ConnectionContext, Durable } from './context.js'
import { FRAME_ACK, FRAME_DATA, FrameDecoder, MESSAGE_ID_BYTES, ackIdsEnd, decodeFrame } from './frames.js'
import { frameBoundFor, isStranger } from './limits.js'
import type { Peer } from './peer.js'
import type { Sender } from './send.js'

/** ACKs gathered before a turn's batch is written at once (64 KiB of ids at most wait for the turn's end). */
const ACK_BATCH_IDS = 4096
/**
 * Bytes of frames whose ACKs may wait for the turn's end: past this the batch is written now. A
 * sender with a window of messages awaiting their callbacks (2 MiB in the bench) must not drain
 * it while a long turn of reads holds every ACK back.
 */
const ACK_BATCH_BYTES = 256 * 1024
/**
 * Durable frames likewise: past this many bytes of them waiting for their record (cut otherwise
 * after the turn's reads) it is written now, and their ACKs go once it is. Before, one turn read
 * the bench's whole 2 MiB window, so sender and receiver took turns: the sender idle while the
 * receiver opened 32 packets, the receiver idle while the sender sealed the next 32. Larger than
 * ACK_BATCH_BYTES: each cut is a storage write. Only where the store writes at once (see
 * DurableReceiving.recordNow).
 */
const RECORD_BATCH_BYTES = 512 * 1024
/**
 * Frames of one read handled before the rest waits for the loop's I/O, when their replies wait
 * for a record (peer.writeDeferred): that record is cut at once and, written meanwhile, releases
 * those replies and ACKs, so the peer works on them while we handle the rest instead of the two
 * taking turns. Bulk (no reply waits) and a read of at most this many frames never wait, nor any
 * read where the store writes later (DurableReceiving.recordNow false: the cut would release
 * nothing sooner, and only add a write).
 */
export const FRAMES_BEFORE_YIELD = 32
/** Frames and bytes waiting so at most: past either the queue and the read are handled at once. */
export const BACKLOG_FRAMES = 2 * FRAMES_BEFORE_YIELD
export const BACKLOG_BYTES = 128 * 1024
const EMPTY = Buffer.alloc(0)

export class Receiver {
  private readonly ctx: ConnectionContext
  private readonly sender: Sender
  private readonly durable: Durable | undefined
  private readonly prefixHex = new IdPrefixHex()

  constructor(ctx: ConnectionContext, sender: Sender, durable?: Durable) {
    this.ctx = ctx
    this.sender = sender
    this.durable = durable
  }

  /** Reads the frames of `channel` for `peer` from now on. */
  listen(peer: Peer, channel: Channel): void {
    const ctx = this.ctx
    const bound = frameBoundFor(ctx.host, ctx.limits, peer.signId)
    const decoder = new FrameDecoder(bound)
    // A stranger's partial frame must be finished in time (else it pins up to `bound` bytes).
    const deadlineMs = isStranger(ctx.host, peer.signId) ? ctx.limits.strangerFrameDeadlineMs : 0
    let deadline: NodeJS.Timeout | undefined
    const clearDeadline = (): void => {
      if (deadline) clearTimeout(deadline)
      deadline = undefined
    }
    // ACKs of one event-loop turn leave together: a reply written this turn carries them (the
    // batch takes every pending ACK), otherwise one write after this turn's reads (setImmediate
    // runs after the poll phase's reads). Per 64 KiB message of a bulk transfer that was one
    // sealed packet and one write each. A handler that replied at once has scheduled the batch
    // by the end of the read: then nothing more is armed; else a microtask looks again once the
    // handlers' own microtasks ran.
    let ackTimer: NodeJS.Immediate | undefined
    let ackCheck = false
    let acked = false
    let ackedBytes = 0
    const flushAcks = (): void => {
      ackTimer = undefined
      ackedBytes = 0
      if (peer.pendingAcks.has(channel)) this.sender.scheduleWrite(peer)
    }
    const checkAcks = (): void => {
      ackCheck = false
      if (!ackTimer && !peer.writeScheduled && peer.pendingAcks.has(channel) && channel.state !== 'closed') ackTimer = setImmediate(flushAcks)
    }
    let recordBytes = 0
    const ackSoon = (bytes: number, recording = false): void => {
      if (recording) {
        // Counted from the first id that waits for a record (the one before is written).
        recordBytes = peer.awaitingRecord <= 1 ? bytes : recordBytes + bytes
        if (recordBytes < RECORD_BATCH_BYTES) return
        recordBytes = 0
        this.durable?.recordNow(peer)
        return
      }
      acked = true
      ackedBytes += bytes
      if (ackedBytes < ACK_BATCH_BYTES) return
      ackedBytes = 0
      this.sender.scheduleWrite(peer)
    }
    // Frames of a read past FRAMES_BEFORE_YIELD while replies wait for a record: handled in
    // order after the loop's I/O, later reads behind them. Views, not copies: a read's buffer is
    // not reused (the decoder keeps views of it too).
    let queue: Buffer[] | undefined
    let queueAt = 0
    let queueBytes = 0
    let run = 0
    let yieldDue = false
    let drainArmed = false
    const dropQueue = (): void => {
      queue = undefined
      queueAt = queueBytes = 0
    }
    channel.once('close', () => {
      clearDeadline()
      if (ackTimer) clearImmediate(ackTimer)
      ackTimer = undefined
      dropQueue()
    })
    const badFrame = (err: unknown): void => {
      clearDeadline()
      dropQueue()
      if (/exceeds the maximum/.test(describe(err))) ctx.counts.frameTooLarge++
      else ctx.counts.badFrame++
      ctx.logger.error({ err, peer: peer.signId }, 'closing a session: bad frame')
      void channel.close(new ProtocolError('ERR_PROTOCOL', `bad frame from ${peer.signId}: ${describe(err)}`, { cause: err }))
    }
    const handle = (body: Buffer): void => {
      this.onFrame(peer, channel, body, ackSoon)
      // The yield waits for a next frame: a read of exactly FRAMES_BEFORE_YIELD costs no turn.
      if (++run >= FRAMES_BEFORE_YIELD && peer.writeDeferred) yieldDue = true
    }
    // The record so far is cut, written while the rest waits: it releases the replies so far.
    // False where the store writes later: no yield, the rest is handled now (run: none again).
    const yieldNow = (): boolean => {
      yieldDue = false
      if (!this.durable?.recordNow(peer)) {
        run = -Infinity
        return false
      }
      if (!drainArmed) setImmediate(drain) // else a later read of this turn: the drain armed takes it too
      drainArmed = true
      return true
    }
    // The ACKs of frames with no reply go in a batch after this turn's reads (see ackTimer).
    const afterFrames = (): void => {
      if (acked && peer.writeScheduled) ackedBytes = 0 // the scheduled batch takes them
      else if (acked && !ackTimer && !ackCheck) {
        ackCheck = true
        queueMicrotask(checkAcks)
      }
    }
    // The queue in order; `all`: without yielding. Stops where a frame closed the channel.
    const runQueue = (all: boolean): void => {
      const list = queue as Buffer[]
      run = all ? -Infinity : 0
      if (all) yieldDue = false
      while (queue === list && queueAt < list.length) {
        if (yieldDue && yieldNow()) {
          // The rest stays queued; the handled slots go (a steady stream may never empty it).
          if (queueAt >= BACKLOG_FRAMES) list.splice(0, queueAt), (queueAt = 0)
          return
        }
        const body = list[queueAt] as Buffer
        list[queueAt++] = EMPTY // not held once handled
        queueBytes -= body.length
        handle(body)
      }
      if (queue === list) dropQueue()
    }
    // The rest, yielding again every FRAMES_BEFORE_YIELD frames while replies wait.
    const drain = (): void => {
      drainArmed = false
      if (!queue || channel.state === 'closed') return dropQueue()
      acked = false
      try {
        runQueue(false)
      } catch (err) {
        return badFrame(err)
      } finally {
        afterFrames()
      }
    }
    let completed = false
    // Past BACKLOG_FRAMES or BACKLOG_BYTES waiting (a peer sending faster than we yield), the
    // queue and the rest of the read are handled at once: what waits stays small.
    const onBody = (body: Buffer): void => {
      completed = true
      if (queue === undefined) {
        if (!yieldDue || !yieldNow()) return handle(body)
      } else if (queue.length - queueAt >= BACKLOG_FRAMES || queueBytes + body.length > BACKLOG_BYTES) {
        runQueue(true)
        return handle(body)
      }
      ;(queue ??= []).push(body)
      queueBytes += body.length
    }
    channel.on('data', (chunk: Buffer) => {
      peer.lastReceivedAt = Date.now()
      completed = false
      acked = false
      if (queue === undefined) {
        run = 0
        yieldDue = false
      }
      try {
        decoder.push(chunk, onBody)
      } catch (err) {
        return badFrame(err)
      }
      afterFrames()
      if (!deadlineMs || channel.state === 'closed') return
      if (!decoder.midFrame) return clearDeadline()
      if (deadline && !completed) return
      clearDeadline()
      deadline = setTimeout(() => {
        deadline = undefined
        ctx.counts.frameDeadline++
        ctx.logger.warn({ peer: peer.signId }, 'closing a session: a frame was not finished in time')
        void channel.close(new ProtocolError('ERR_TIMEOUT', `${peer.signId} did not finish a frame within ${deadlineMs} ms`))
      }, deadlineMs)
      deadline.unref()
    })
  }

  private onFrame(peer: Peer, via: Channel, body: Buffer, ackSoon: (bytes: number, recording?: boolean) => void): void {
    if (body[0] === FRAME_ACK) {
      // Read where they lie: no view or array per ACK (one each per message in a ping-pong).
      const end = ackIdsEnd(body) // throws DecodeError: listen() closes the channel
      for (let at = 1; at < end; at += MESSAGE_ID_BYTES) {
        // Our ids are our prefix and our sequence number: anything else is not ours.
        const key = this.sender.ids.ours(body, at) ?? this.durable?.ackKey(body, at)
        if (key === undefined) continue
        const item = peer.inflight.get(key)
        if (item) {
          peer.inflight.delete(key)
          this.sender.succeed(item)
        }
      }
      return
    }
    const frame = decodeFrame(body) // throws DecodeError: listen() closes the channel
    if (frame.type !== FRAME_DATA) return // PING: its arrival already counted as life
    peer.lastMessageAt = Date.now()
    if (frame.durable && this.durable) {
      // Recorded in storage first: delivery-receive.ts queues the ACK behind the record, and the
      // store's commit sends a batch's ACKs at once. A resend with nothing being recorded: now.
      if (this.durable.receive(peer, frame, via)) this.ack(peer, via, frame.id, ackSoon, body.length)
      else ackSoon(body.length, true)
      return
    }
    this.ack(peer, via, frame.id, ackSoon, body.length)
    if (!peer.seen.firstSight(frame.id)) return
    if (frame.expiresAt !== undefined && frame.expiresAt < Date.now()) return
    const host = this.ctx.host
    host.deliver({
      sender: peer.signId,
      protocol: frame.protocol,
      topic: frame.topic,
      scope: host.scopeOf(peer.signId),
      payload: frame.payload,
      id: formatMessageId(this.prefixHex.of(frame.id), frame.id.readUInt32BE(8) * 0x1_0000_0000 + frame.id.readUInt32BE(12))
    })
  }

  /**
   * ACKs ride in the next batch written to the peer: with a reply, or at the end of this turn.
   * Past ACK_BATCH_IDS the batch is written now (as each read did before): a flood of tiny frames
   * from a peer that does not read must reach the held-ACK bound (send.ts) no later than before.
   * So it is past ACK_BATCH_BYTES of frames (`bytes`: this frame's).
   */
  private ack(peer: Peer, via: Channel, id: Buffer, ackSoon: (bytes: number) => void, bytes = 0): void {
    let list = peer.pendingAcks.get(via)
    if (!list) peer.pendingAcks.set(via, (list = AckList.take()))
    list.push(id) // a copy: `id` is a view into the packet
    if (list.length >= ACK_BATCH_IDS) this.sender.scheduleWrite(peer)
    else ackSoon(bytes)
  }
}
