/**
 * The receiver's ACKs (src/connections/receive.ts): the ACKs of the frames read in one
 * event-loop turn leave in one write, not one per read; past 4096 pending ids or 256 KiB of
 * frames they go at once (durable frames: past 512 KiB their ids are recorded at once, then ACKed).
 * Driven with a stand-in channel and sender, so that "one read" is one callback of its own (as
 * libuv calls each socket read, the microtasks running after each).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { randomBytes } from '../src/crypto/sodium.js'
import { encodeData } from '../src/connections/frames.js'
import { DEFAULT_MAX_FRAME_BYTES } from '../src/connections/frames.js'
import { Peer } from '../src/connections/peer.js'
import { Receiver } from '../src/connections/receive.js'
import type { ConnectionContext } from '../src/connections/context.js'
import type { Channel } from '../src/connections/channel.js'
import type { Sender } from '../src/connections/send.js'
import type { Durable, Flushing } from '../src/connections/context.js'
import type { DataFrame } from '../src/connections/frames.js'
import { DurableReceiving } from '../src/connections/delivery-receive.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import type { BatchOp } from '../src/storage/store.js'

function setup(reply = false): { receiver: Receiver; peer: Peer; channel: Channel; writes: number[]; delivered: () => number } {
  const { peer, channel, writes, delivered, ctx, sender } = setupParts(reply)
  const receiver = new Receiver(ctx, sender)
  receiver.listen(peer, channel)
  return { receiver, peer, channel, writes, delivered }
}

function setupParts(reply = false, onWrite = (): void => {}): { peer: Peer; channel: Channel; writes: number[]; delivered: () => number; ctx: ConnectionContext; sender: Sender } {
  const peer = new Peer(randomBytes(32).toString('hex'))
  const writes: number[] = []
  // Like Sender.scheduleWrite: one write per turn, taking every pending ACK.
  const sender = {
    scheduleWrite(p: Peer): void {
      if (p.writeScheduled) return
      p.writeScheduled = true
      queueMicrotask(() => {
        p.writeScheduled = false
        let ids = 0
        for (const list of p.pendingAcks.values()) ids += list.length
        p.pendingAcks.clear()
        writes.push(ids)
        onWrite()
      })
    }
  } as unknown as Sender
  let delivered = 0
  const ctx = {
    // With `reply`, the handler answers at once: the reply schedules the batch (Sender.send).
    host: {
      deliver: () => {
        delivered++
        if (reply) sender.scheduleWrite(peer)
      },
      scopeOf: () => 'friends',
      emit: () => true
    },
    limits: { maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, strangerMaxFrameBytes: DEFAULT_MAX_FRAME_BYTES, maxHeldAckIds: 65_536 },
    counts: {},
    logger: { error() {}, warn() {}, info() {}, debug() {} }
  } as unknown as ConnectionContext
  const channel = Object.assign(new EventEmitter(), { state: 'open' }) as unknown as Channel
  return { peer, channel, writes, delivered: () => delivered, ctx, sender }
}

const frame = (payload = 64): Buffer => encodeData({ id: randomBytes(16), protocol: 'bt', topic: 't', expiresAt: Date.now() + 60_000, payload: randomBytes(payload) })
const turn = (): Promise<void> => new Promise((r) => setImmediate(r))

test('the ACKs of ten reads in one turn leave in one write', async () => {
  const { channel, writes, delivered } = setup()
  // Ten reads of one poll phase: ten callbacks of the same phase, microtasks run after each.
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 10; i++) setImmediate(() => channel.emit('data', frame()))
    setImmediate(resolve)
  })
  await turn()
  await turn()
  assert.equal(delivered(), 10)
  assert.deepEqual(writes, [10], 'one write carried the ten ACKs')
})

test('a reply written in the same turn carries the ACKs (no write of their own)', async () => {
  const { channel, writes, delivered } = setup(true)
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 3; i++) setImmediate(() => channel.emit('data', frame()))
    setImmediate(resolve)
  })
  await turn()
  await turn()
  assert.equal(delivered(), 3)
  assert.deepEqual(writes, [1, 1, 1], 'each reply\'s write carried its ACK, and nothing else was written')
})

test('past 4096 pending ACKs the batch is written before the turn ends', async () => {
  const { channel, writes } = setup()
  channel.emit('data', Buffer.concat(Array.from({ length: 5000 }, () => frame())))
  await Promise.resolve()
  await Promise.resolve()
  assert.ok(writes.length >= 1 && (writes[0] as number) >= 4096, `a write within the turn (${writes.join(',')})`)
  await turn()
  await turn()
  assert.equal(writes.reduce((a, b) => a + b, 0), 5000, 'every frame ACKed')
})

test('past 256 KiB of frames the ACKs go before the turn ends (a sender\'s window never drains)', async () => {
  const { channel, writes } = setup()
  // Six 64 KiB messages, one per read, all in one turn.
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 6; i++) setImmediate(() => channel.emit('data', frame(64 * 1024)))
    setImmediate(resolve)
  })
  await turn()
  await turn()
  assert.deepEqual(writes, [4, 2], 'the fourth 64 KiB message sent the batch; the rest went at the end of the turn')
})

/** A receiver with the durable path: the real DurableReceiving and seen-id record, on a MemoryStore. */
async function setupDurable(store: MemoryStore = new MemoryStore()): Promise<{ channel: Channel; writes: number[]; recordedAtWrite: number[]; close: () => Promise<void> }> {
  let recorded = 0
  const recordedAtWrite: number[] = []
  const { channel, writes, peer, ctx, sender } = setupParts(false, () => recordedAtWrite.push(recorded))
  const storage = new PlatformStorage(store)
  await storage.open()
  const batch = storage.batch.bind(storage)
  storage.batch = (ops, options) => batch(ops, options).then(() => void (recorded += ops.length))
  const batchNow = storage.batchNow.bind(storage)
  storage.batchNow = (ops, options) => {
    const written = batchNow(ops, options)
    if (written) recorded += ops.length
    return written
  }
  const receiving = new DurableReceiving(ctx, sender as unknown as Flushing)
  await receiving.open(storage, Date.now, false)
  const durable = { receive: (p: Peer, f: DataFrame, v: Channel) => receiving.receive(p, f, v), recordNow: (p: Peer) => receiving.recordNow(p) } as unknown as Durable
  new Receiver(ctx, sender, durable).listen(peer, channel)
  return { channel, writes, recordedAtWrite, close: async () => (await receiving.close(), await storage.close()) }
}

const STREAM = randomBytes(8)
let nextSeq = 0
const durableFrame = (payload: number): Buffer => {
  const id = Buffer.alloc(16)
  STREAM.copy(id)
  id.writeUInt32BE(nextSeq++, 12)
  return encodeData({ id, protocol: 'bt', topic: 't', expiresAt: Date.now() + 60_000, payload: randomBytes(payload), durable: true })
}

test('durable frames: past 512 KiB of them in one turn their ids are recorded and ACKed before the turn ends, never before the record', async () => {
  const { channel, writes, recordedAtWrite, close } = await setupDurable()
  // Twenty 64 KiB messages, one per read, all in one turn (as one poll phase reads a sender's window).
  const atWrite: number[] = []
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 20; i++) setImmediate(() => channel.emit('data', durableFrame(64 * 1024)))
    setImmediate(resolve)
  })
  atWrite.push(...writes)
  await turn()
  await turn()
  assert.deepEqual(atWrite, [8, 8], 'the 8th and the 16th message had their ids recorded and their ACKs sent within the turn')
  assert.deepEqual(writes, [8, 8, 4], 'the last four went with the record cut after the turn')
  assert.deepEqual(recordedAtWrite, [1, 2, 3], 'each ACK write came after the record of its ids was written')
  await close()
})

test('durable frames on a slow store: a record cut early is never written beside another, the ACKs follow each record, and no more early cuts', async () => {
  let writing = 0
  let most = 0
  class SlowStore extends MemoryStore {
    override async batch(ops: BatchOp[]): Promise<void> {
      most = Math.max(most, ++writing)
      await new Promise((r) => setTimeout(r, 50)) // longer than a turn of this test's reads
      for (const op of ops) if (op.type === 'put') await this.put(op.key, op.value as string)
      writing--
    }
  }
  const { channel, writes, recordedAtWrite, close } = await setupDurable(new SlowStore())
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 20; i++) setImmediate(() => channel.emit('data', durableFrame(64 * 1024)))
    setImmediate(resolve)
  })
  assert.deepEqual(writes, [], 'nothing ACKed before its record is written')
  while (writes.reduce((a, b) => a + b, 0) < 20) await new Promise((r) => setTimeout(r, 5))
  assert.equal(most, 1, 'one record batch written at a time')
  assert.deepEqual(writes, [8, 12], 'the first eight were cut at once; the rest waited for that write, then went together')
  assert.deepEqual(recordedAtWrite, [1, 2])
  // That store writes after the turn: from now on its records are not cut early (one write a turn).
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 20; i++) setImmediate(() => channel.emit('data', durableFrame(64 * 1024)))
    setImmediate(resolve)
  })
  while (writes.reduce((a, b) => a + b, 0) < 40) await new Promise((r) => setTimeout(r, 5))
  assert.deepEqual(writes, [8, 12, 20], 'the next turn\'s twenty ids in one record, one ACK write')
  assert.equal(most, 1)
  await close()
})
