/**
 * The receiver's ACKs (src/connections/receive.ts): the ACKs of the frames read in one
 * event-loop turn leave in one write, not one per read; past 4096 pending ids they go at once.
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

function setup(reply = false): { receiver: Receiver; peer: Peer; channel: Channel; writes: number[]; delivered: () => number } {
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
    limits: { maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, strangerMaxFrameBytes: DEFAULT_MAX_FRAME_BYTES },
    counts: {},
    logger: { error() {}, warn() {}, info() {}, debug() {} }
  } as unknown as ConnectionContext
  const channel = Object.assign(new EventEmitter(), { state: 'open' }) as unknown as Channel
  const receiver = new Receiver(ctx, sender)
  receiver.listen(peer, channel)
  return { receiver, peer, channel, writes, delivered: () => delivered }
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
