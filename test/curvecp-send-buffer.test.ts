/**
 * The send side of the CurveCP message stream on its own: cutting blocks within the send
 * window, acknowledgement by ranges (an EOF needs one position more), loss marking by the
 * reorder threshold and by timeout, and back-pressure.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EOF_SUCCESS } from '../src/curvecp/message-layer.js'
import { REORDER_THRESHOLD, SendBuffer, blockBytes, type Block } from '../src/curvecp/send-buffer.js'

/** Cuts and "sends" every block the buffer allows, at time `now`. */
function sendAll(sb: SendBuffer, maxBytes: number, now = 0): Block[] {
  const out: Block[] = []
  for (let b = sb.cut(maxBytes); b; b = sb.cut(maxBytes)) {
    sb.transmitted(b, now, false)
    out.push(b)
  }
  return out
}

test('blocks are cut at most maxBytes long, in stream order, never past the send window', () => {
  const sb = new SendBuffer({ sendWindowBytes: 2500 })
  sb.write(Buffer.alloc(4000))
  const blocks = sendAll(sb, 1000)
  assert.deepEqual(blocks.map((b) => [b.pos, b.data.length]), [[0, 1000], [1000, 1000], [2000, 500]])
  assert.equal(sb.sendNext, 2500)
  assert.equal(sb.inFlight, 3)
  assert.equal(sb.bufferedBytes, 4000)
  // Acknowledging the first block opens the window by its length.
  assert.equal(sb.acknowledge([{ start: 0, end: 1000 }]), 1)
  assert.equal(sb.sendAcked, 1000)
  assert.deepEqual(sendAll(sb, 1000).map((b) => [b.pos, b.data.length]), [[2500, 1000]])
})

test('writes are cut across their boundaries and copied', () => {
  const sb = new SendBuffer()
  const a = Buffer.from('abc')
  sb.write(a)
  sb.write(Buffer.from('defgh'))
  a.fill(0)
  const [b1, b2] = sendAll(sb, 4)
  assert.equal(blockBytes(b1!).toString(), 'abcd')
  assert.equal(b1?.size, 4)
  assert.equal(blockBytes(b2!).toString(), 'efgh')
})

test('a block that spans owned writes is their views, in turn: no copy until the packet', () => {
  const sb = new SendBuffer()
  // Not from the pool: each its own ArrayBuffer.
  const a = Buffer.alloc(3, 'abc')
  const b = Buffer.alloc(5, 'defgh')
  sb.write(a, true)
  sb.write(b, true)
  const [b1, b2] = sendAll(sb, 4)
  assert.deepEqual(b1?.parts?.map((p) => [p.buffer === a.buffer, p.buffer === b.buffer, p.toString()]), [[true, false, 'abc'], [false, true, 'd']])
  assert.equal(b1?.data.length, 0)
  assert.equal(b2?.parts, null)
  assert.equal(b2?.data.toString(), 'efgh')
  assert.equal(b2?.data.buffer, b.buffer)
})

test('an owned write is kept as it is: its blocks are views into the buffer handed over', () => {
  // The channel hands over frames it encoded and never changes (as a socket's writev keeps them).
  const sb = new SendBuffer()
  const a = Buffer.alloc(8) // not from the pool: a copy would have another ArrayBuffer
  a.write('abcdefgh')
  sb.write(a, true)
  const [b1, b2] = sendAll(sb, 4)
  assert.equal(b1?.data.buffer, a.buffer, 'no copy')
  assert.equal(b1?.data.toString(), 'abcd')
  assert.equal(b2?.data.toString(), 'efgh')
  // A Uint8Array that is not a Buffer is still copied (the queue holds Buffers).
  const u = new Uint8Array([1, 2])
  sb.write(u, true)
  u.fill(0)
  assert.deepEqual([...(sendAll(sb, 4)[0]?.data ?? [])], [1, 2])
})

test('the number of blocks tracked is bounded', () => {
  const sb = new SendBuffer({ maxBlocksInFlight: 4 })
  sb.write(Buffer.alloc(100))
  assert.equal(sendAll(sb, 10).length, 4)
  assert.equal(sb.queueBytes, 60)
})

test('ranges acknowledge only whole blocks, and release them from the front', () => {
  const sb = new SendBuffer()
  sb.write(Buffer.alloc(300))
  const [b0, b1, b2] = sendAll(sb, 100)
  assert.equal(sb.acknowledge([{ start: 0, end: 50 }, { start: 100, end: 250 }]), 1, 'only [100, 200) is whole')
  assert.equal(b1?.acked, true)
  assert.equal(b0?.acked, false)
  assert.equal(sb.sendAcked, 0, 'the first block still waits')
  assert.equal(sb.blockById(b1?.id ?? -1), undefined, 'an acknowledged block is no longer found by id')
  assert.equal(sb.acknowledge([{ start: 0, end: 100 }]), 1)
  assert.equal(sb.sendAcked, 200)
  assert.equal(sb.blocks.length, 1)
  assert.equal(b2?.acked, false)
  assert.equal(sb.inFlight, 1)
})

test('an EOF block is acknowledged only by a range one past its last byte', () => {
  const sb = new SendBuffer()
  sb.write(Buffer.alloc(10))
  sb.eofWanted = EOF_SUCCESS
  const [b] = sendAll(sb, 100)
  assert.equal(b?.eof, EOF_SUCCESS)
  assert.equal(sb.eofBlocked, true)
  assert.equal(sb.acknowledge([{ start: 0, end: 10 }]), 0)
  assert.equal(sb.eofAcked, false)
  assert.equal(sb.acknowledge([{ start: 0, end: 11 }]), 1)
  assert.equal(sb.eofAcked, true)
  assert.equal(sb.empty, true)
})

test(`a block sent ${REORDER_THRESHOLD} transmissions before an acknowledged one counts as lost`, () => {
  const sb = new SendBuffer()
  sb.write(Buffer.alloc(600))
  sendAll(sb, 100)
  // Blocks 1..3 (transmissions 2..4) arrive, block 0 (transmission 1) does not.
  sb.acknowledge([{ start: 0, end: 0 }, { start: 100, end: 300 }])
  assert.equal(sb.highestAckedTx, 3)
  assert.equal(sb.detectLoss(sb.highestAckedTx), 0, 'two later blocks are not enough')
  sb.acknowledge([{ start: 0, end: 0 }, { start: 100, end: 400 }])
  assert.equal(sb.highestAckedTx, 4)
  assert.equal(sb.detectLoss(sb.highestAckedTx), 1)
  assert.equal(sb.lostCount, 1)
  assert.equal(sb.inFlight, 2)
  const lost = sb.firstLost()
  assert.equal(lost?.pos, 0)
  // Sent again: no longer lost, in flight with a new id; a repeat does not count for RACK.
  const oldId = lost?.id ?? 0
  const id = sb.transmitted(lost as Block, 10, false)
  assert.notEqual(id, oldId)
  assert.equal(sb.lostCount, 0)
  assert.equal(sb.inFlight, 3)
  sb.acknowledge([{ start: 0, end: 100 }])
  assert.equal(sb.highestAckedTx, 0)
})

test('a timeout marks every block in flight lost; a spurious one puts them back', () => {
  const sb = new SendBuffer()
  sb.write(Buffer.alloc(300))
  sendAll(sb, 100, 5)
  assert.equal(sb.oldestSentAt(), 5)
  assert.equal(sb.hasExpired(104, 100), false)
  assert.equal(sb.hasExpired(105, 100), true)
  sb.markAllLost()
  assert.equal(sb.inFlight, 0)
  assert.equal(sb.lostCount, 3)
  assert.equal(sb.oldestSentAt(), Infinity)
  assert.equal(sb.hasExpired(1000, 100), false, 'lost blocks are not in flight')
  sb.unmarkLost()
  assert.equal(sb.inFlight, 3)
  assert.equal(sb.lostCount, 0)
})

test('after a timeout the first transmission is still found by its id', () => {
  const sb = new SendBuffer()
  sb.write(Buffer.alloc(100))
  const [b] = sendAll(sb, 100)
  const first = b?.id ?? 0
  sb.markAllLost()
  const second = sb.transmitted(b as Block, 50, true)
  assert.equal(sb.blockById(first), b)
  assert.equal(sb.blockById(second), b)
  assert.equal(b?.prevId, first)
  sb.markAcked(b as Block)
  assert.equal(sb.blockById(first), undefined)
  assert.equal(sb.blockById(second), undefined)
})

test('write() says false at the high-water mark, drains once, and throws past the hard bound', () => {
  const sb = new SendBuffer({ highWaterBytes: 1000, maxBufferedBytes: 3000 })
  assert.equal(sb.write(Buffer.alloc(999)), true)
  assert.equal(sb.drained(), false, 'nothing to drain: write() never said false')
  assert.equal(sb.write(Buffer.alloc(1)), false)
  assert.equal(sb.write(Buffer.alloc(2000)), false)
  assert.throws(() => sb.write(Buffer.alloc(1)), { code: 'ERR_QUEUE_FULL' })
  assert.equal(sb.write(Buffer.alloc(0)), false)
  sendAll(sb, 1000)
  sb.acknowledge([{ start: 0, end: 2000 }])
  assert.equal(sb.drained(), false, '1000 bytes still wait')
  sb.acknowledge([{ start: 0, end: 2500 }])
  assert.equal(sb.drained(), false, 'block boundaries: nothing more acknowledged')
  sb.acknowledge([{ start: 0, end: 3000 }])
  assert.equal(sb.drained(), true)
  assert.equal(sb.drained(), false, 'once')
})

test('an empty block carries the EOF or a ping', () => {
  const sb = new SendBuffer()
  assert.equal(sb.cut(100), undefined, 'nothing to send')
  sb.wantPing = true
  const ping = sb.cut(100)
  assert.equal(ping?.data.length, 0)
  assert.equal(ping?.eof, 0)
  assert.equal(sb.wantPing, false)
  sb.eofWanted = EOF_SUCCESS
  const eof = sb.cut(100)
  assert.equal(eof?.data.length, 0)
  assert.equal(eof?.eof, EOF_SUCCESS)
  assert.equal(sb.cut(100), undefined, 'the EOF goes once')
})
