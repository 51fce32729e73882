/**
 * A large read of durable frames while replies wait for their record (src/connections/receive.ts):
 * the record is cut after FRAMES_BEFORE_YIELD frames (Durable.recordNow) and the rest of the read
 * waits for the loop's I/O, so the replies so far leave before the rest is handled. Bulk (no reply
 * waiting) and a read of at most that many frames are handled in the read, and so is every read
 * where the store writes later (recordNow false: LevelDB). The queue is bounded: past
 * BACKLOG_FRAMES or BACKLOG_BYTES it and the read are handled at once. Driven with stand-in
 * channel and sender, and a stand-in durable receiving or the real one (delivery-receive.ts).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { randomBytes } from '../src/crypto/sodium.js'
import { DEFAULT_MAX_FRAME_BYTES, encodeData, type DataFrame } from '../src/connections/frames.js'
import { Peer } from '../src/connections/peer.js'
import { BACKLOG_BYTES, FRAMES_BEFORE_YIELD as N, Receiver } from '../src/connections/receive.js'
import type { ConnectionContext, Durable, Flushing } from '../src/connections/context.js'
import type { Channel } from '../src/connections/channel.js'
import type { Sender } from '../src/connections/send.js'
import { DurableReceiving } from '../src/connections/delivery-receive.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import type { BatchOp } from '../src/storage/store.js'

interface Rig {
  channel: Channel
  handled: number[]
  cuts: () => number
  /** For each write of replies: how many frames were handled when it left. */
  writes: number[]
}

const context = (deliver: () => void = () => {}): ConnectionContext =>
  ({
    host: { deliver, scopeOf: () => 'friends', emit: () => true },
    limits: { maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, strangerMaxFrameBytes: DEFAULT_MAX_FRAME_BYTES, maxHeldAckIds: 65_536 },
    counts: {},
    logger: { error() {}, warn() {}, info() {}, debug() {} }
  }) as unknown as ConnectionContext

/**
 * `replies`: each frame's handler replies, and the reply waits for the frame's record (as
 * send.ts defers it): a cut record is written in a microtask and its replies leave then.
 * `writesLater`: the store writes after the turn (recordNow cuts nothing and says false).
 */
function setup(replies: boolean, writesLater = false): Rig {
  const peer = new Peer(randomBytes(32).toString('hex'))
  const handled: number[] = []
  const writes: number[] = []
  let cuts = 0
  let unrecorded = 0
  const sender = { scheduleWrite() {} } as unknown as Sender
  const durable = {
    receive(p: Peer, frame: DataFrame): boolean {
      handled.push((frame.payload as Buffer).readUInt32BE(0))
      if (replies) {
        p.writeDeferred = true // the handler's reply waits for this record
        unrecorded++
      }
      return false
    },
    recordNow(): boolean {
      if (writesLater) return false
      cuts++
      if (unrecorded === 0) return true
      unrecorded = 0
      // The store's write resolves; its replies are written (send.ts, forced).
      void Promise.resolve().then(() => writes.push(handled.length))
      return true
    }
  } as unknown as Durable
  const channel = Object.assign(new EventEmitter(), { state: 'open' }) as unknown as Channel
  new Receiver(context(), sender, durable).listen(peer, channel)
  return { channel, handled, cuts: () => cuts, writes }
}

/** One read of `n` durable frames numbered from `from`, each `payloadBytes` long (ids: `stream`, seqs from `from`). */
const read = (from: number, n: number, payloadBytes = 64, stream = randomBytes(8)): Buffer =>
  Buffer.concat(
    Array.from({ length: n }, (_, i) => {
      const payload = Buffer.alloc(payloadBytes)
      payload.writeUInt32BE(from + i, 0)
      const id = Buffer.alloc(16)
      stream.copy(id)
      id.writeUInt32BE(from + i + 1, 12)
      return encodeData({ id, protocol: 'bt', topic: 't', durable: true, payload })
    })
  )
const turn = (): Promise<void> => new Promise((r) => setImmediate(r))
const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

test(`a read of ${2 * N} durable frames with replies waiting: the first replies leave before the rest is handled, every frame once and in order`, async () => {
  const { channel, handled, cuts, writes } = setup(true)
  channel.emit('data', read(0, 2 * N))
  assert.equal(handled.length, N, "the rest waits for the loop's I/O")
  assert.equal(cuts(), 1, `the record of the first ${N} was cut at once`)
  channel.emit('data', read(2 * N, 4)) // a later read queues behind
  assert.equal(handled.length, N)
  await Promise.resolve()
  assert.deepEqual(writes, [N], `the replies of the first ${N} left with ${N} frames of the read not handled`)
  for (let i = 0; i < 10; i++) await turn()
  assert.deepEqual(handled, upTo(2 * N + 4), 'every frame once, in order')
  assert.ok(cuts() >= 2, `a cut per ${N} frames (${cuts()})`)
})

test('bulk (no reply waiting) and a read of at most the yield count are handled in the read, with no early cut', () => {
  const bulk = setup(false)
  bulk.channel.emit('data', read(0, 4 * N))
  assert.equal(bulk.handled.length, 4 * N)
  assert.equal(bulk.cuts(), 0)
  const exact = setup(true)
  exact.channel.emit('data', read(0, N))
  assert.equal(exact.handled.length, N)
  assert.equal(exact.cuts(), 0, 'nothing left: no cut and no extra turn')
})

test('where the store writes later (recordNow false) a read with replies waiting is handled in the read', () => {
  const { channel, handled } = setup(true, true)
  channel.emit('data', read(0, 2 * N))
  assert.deepEqual(handled, upTo(2 * N), 'no yield: nothing would leave sooner')
})

test(`the queue stays bounded: a peer sending 256 KiB of frames a turn never has more than ${BACKLOG_BYTES / 1024} KiB waiting`, async () => {
  const { channel, handled } = setup(true)
  const perTurn = 256 // frames of ~1 KiB, in reads of 64 KiB: more than a turn's drain takes
  let sent = 0
  let most = 0
  for (let t = 0; t < 100; t++) {
    for (let r = 0; r < perTurn; r += 64, sent += 64) channel.emit('data', read(sent, 64, 1000))
    await turn()
    most = Math.max(most, (sent - handled.length) * 1030)
  }
  assert.ok(most <= BACKLOG_BYTES, `at most ${most} bytes waited`)
  for (let i = 0; i < 10; i++) await turn()
  assert.deepEqual(handled, upTo(sent), 'every frame once, in order')
})

/**
 * The real DurableReceiving and seen-id record on `store`; each handler replies at once, and the
 * stand-in sender defers that reply while ids are being recorded (as send.ts does).
 */
async function setupReal(store: MemoryStore): Promise<{ channel: Channel; handled: () => number; close: () => Promise<void> }> {
  const peer = new Peer(randomBytes(32).toString('hex'))
  let handled = 0
  const sender = {
    scheduleWrite(p: Peer, force = false): void {
      if (!force && p.recording > 0) p.writeDeferred = true
      else p.writeDeferred = false
      p.pendingAcks.clear()
    }
  } as unknown as Sender
  const ctx = context(() => {
    handled++
    sender.scheduleWrite(peer)
  })
  const storage = new PlatformStorage(store)
  await storage.open()
  const receiving = new DurableReceiving(ctx, sender as unknown as Flushing)
  await receiving.open(storage, Date.now, false)
  const durable = { receive: (p: Peer, f: DataFrame, v: Channel) => receiving.receive(p, f, v), recordNow: (p: Peer) => receiving.recordNow(p) } as unknown as Durable
  const channel = Object.assign(new EventEmitter(), { state: 'open' }) as unknown as Channel
  new Receiver(ctx, sender, durable).listen(peer, channel)
  return { channel, handled: () => handled, close: async () => (await receiving.close(), await storage.close()) }
}

test('with the real record: a MemoryStore (writes at once) yields on every large read; a store that writes after the turn yields on the first only', async () => {
  const fast = await setupReal(new MemoryStore())
  const stream = randomBytes(8)
  for (let r = 0; r < 3; r++) {
    fast.channel.emit('data', read(r * 2 * N, 2 * N, 64, stream))
    assert.equal(fast.handled(), r * 2 * N + N, `read ${r}: ${N} handled, the rest after the loop's I/O`)
    for (let i = 0; i < 10; i++) await turn()
    assert.equal(fast.handled(), (r + 1) * 2 * N)
  }
  await fast.close()
  class SlowStore extends MemoryStore {
    override async batch(ops: BatchOp[]): Promise<void> {
      await new Promise((r) => setTimeout(r, 20))
      for (const op of ops) if (op.type === 'put') await this.put(op.key, op.value as string)
    }
  }
  const slow = await setupReal(new SlowStore())
  slow.channel.emit('data', read(0, 2 * N, 64, stream))
  assert.equal(slow.handled(), N, 'the first large read yields: the early cut is the probe')
  for (let i = 0; i < 10; i++) await turn()
  assert.equal(slow.handled(), 2 * N)
  // The probe found that record unwritten after the turn: no yield from now on.
  slow.channel.emit('data', read(2 * N, 2 * N, 64, stream))
  assert.equal(slow.handled(), 4 * N, 'handled in the read')
  await new Promise((r) => setTimeout(r, 100))
  await slow.close()
})
