/**
 * The receive side of the CurveCP message stream on its own: in-order delivery, out-of-order
 * blocks held within their bounds, the acknowledgement ranges the spec allows (range 1 from 0,
 * ranges 2..6 and their gaps at most 65535 bytes), and the peer's EOF.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EOF_FAILURE, EOF_SUCCESS, type EndOfStream, type StreamMessage } from '../src/curvecp/message-layer.js'
import { ReceiveBuffer, type ReceiveBufferOptions } from '../src/curvecp/receive-buffer.js'

function block(offset: number, length: number, eof: EndOfStream = 0): StreamMessage {
  const data = Buffer.alloc(length)
  for (let i = 0; i < length; i++) data[i] = (offset + i) & 0xff
  return { id: 1, acknowledging: 0, ranges: [], eof, offset, data }
}

function make(options: ReceiveBufferOptions = {}) {
  const out = { chunks: [] as Buffer[], ends: [] as number[] }
  const drops = { beyondWindow: 0, afterEof: 0, outOfOrderFull: 0, duplicate: 0 }
  const rb = new ReceiveBuffer({ onData: (d) => out.chunks.push(Buffer.from(d)), onEnd: (e) => out.ends.push(e) }, drops, options)
  const ranges = (): Array<[number, number]> => rb.ackRanges().map((r) => [r.start, r.end])
  return { rb, out, drops, ranges }
}

test('in-order blocks are delivered at once and acknowledged by range 1', () => {
  const { rb, out, ranges } = make()
  assert.equal(rb.take(block(0, 100)), true)
  assert.equal(rb.take(block(100, 50)), true)
  assert.equal(rb.received, 150)
  assert.deepEqual(out.chunks.map((c) => c.length), [100, 50])
  assert.deepEqual(ranges(), [[0, 150]])
})

test('out-of-order blocks are held, acknowledged as later ranges, and delivered once the gap fills', () => {
  const { rb, out, ranges } = make()
  rb.take(block(0, 10))
  rb.take(block(20, 10))
  rb.take(block(40, 10))
  assert.equal(rb.received, 10)
  assert.equal(rb.heldBlocks, 2)
  assert.deepEqual(ranges(), [[0, 10], [20, 30], [40, 50]])
  rb.take(block(10, 10))
  assert.deepEqual(ranges(), [[0, 30], [40, 50]])
  rb.take(block(30, 10))
  assert.deepEqual(ranges(), [[0, 50]])
  assert.equal(rb.heldBlocks, 0)
  const all = Buffer.concat(out.chunks)
  assert.equal(all.length, 50)
  for (let i = 0; i < 50; i++) assert.equal(all[i], i, `byte ${i} in order`)
})

test('touching held blocks merge into one range', () => {
  const { rb, ranges } = make()
  rb.take(block(0, 10))
  rb.take(block(30, 10))
  rb.take(block(20, 10))
  rb.take(block(40, 5))
  assert.deepEqual(ranges(), [[0, 10], [20, 45]])
})

test('at most six ranges go out; the rest wait', () => {
  const { rb, ranges } = make()
  rb.take(block(0, 1))
  for (let k = 1; k <= 8; k++) rb.take(block(k * 10, 1))
  assert.equal(rb.heldBlocks, 8)
  const r = ranges()
  assert.equal(r.length, 6)
  assert.deepEqual(r, [[0, 1], [10, 11], [20, 21], [30, 31], [40, 41], [50, 51]])
})

test('ranges 2..6 stay within 65535 bytes, and so do the gaps between them', () => {
  const { rb, ranges } = make({ receiveWindowBytes: 1 << 20, maxOutOfOrderBlocks: 1000 })
  rb.take(block(0, 1))
  // Blocks back to back from 100 for 70,000 bytes: one range would be too long.
  for (let at = 100; at < 70_100; at += 1000) rb.take(block(at, 1000))
  let r = ranges()
  for (const [s, e] of r.slice(1)) assert.ok(e - s <= 0xffff, `range [${s}, ${e}) of ${e - s} bytes`)
  assert.deepEqual(r.slice(0, 3), [[0, 1], [100, 65_100], [65_100, 70_100]], 'split on a block boundary')
  // A gap of more than 65535 bytes between ranges 2 and 3 ends the list.
  const far = make({ receiveWindowBytes: 1 << 20 })
  far.rb.take(block(1000, 10))
  far.rb.take(block(1010 + 0x10000, 10))
  r = far.ranges()
  assert.deepEqual(r, [[0, 0], [1000, 1010]])
})

test('the receive window bounds what is held: beyond it a block is dropped unacknowledged', () => {
  const { rb, drops, ranges } = make({ receiveWindowBytes: 1000 })
  assert.equal(rb.take(block(990, 20)), false, 'ends past received + window')
  assert.equal(drops.beyondWindow, 1)
  assert.equal(rb.take(block(100, 500)), true)
  // Overlapping blocks (a sender may cut differently when it sends again) count in full.
  assert.equal(rb.take(block(200, 500)), true, 'held bytes reach the window, not past it')
  assert.equal(rb.take(block(300, 500)), false, 'held bytes would pass the window')
  assert.equal(drops.outOfOrderFull, 1)
  assert.deepEqual(ranges(), [[0, 0], [100, 700]])
})

test('the held block count is bounded', () => {
  const { rb, drops } = make({ maxOutOfOrderBlocks: 3 })
  for (const at of [10, 20, 30]) assert.equal(rb.take(block(at, 1)), true)
  assert.equal(rb.take(block(40, 1)), false)
  assert.equal(drops.outOfOrderFull, 1)
  assert.equal(rb.heldBlocks, 3)
})

test('duplicates are counted and still acknowledged', () => {
  const { rb, drops, out } = make()
  rb.take(block(0, 10))
  assert.equal(rb.take(block(0, 10)), true)
  rb.take(block(20, 10))
  assert.equal(rb.take(block(22, 5)), true, 'inside a held block')
  assert.equal(drops.duplicate, 2)
  assert.equal(out.chunks.length, 1)
})

test('a success EOF ends the stream once every byte arrived; range 1 then covers the EOF position', () => {
  const { rb, out, ranges } = make()
  rb.take(block(10, 5, EOF_SUCCESS))
  assert.deepEqual(out.ends, [], 'bytes before the EOF are missing')
  assert.deepEqual(ranges(), [[0, 0], [10, 15]])
  rb.take(block(0, 10))
  assert.deepEqual(out.ends, [EOF_SUCCESS])
  assert.equal(rb.ended, true)
  assert.deepEqual(ranges(), [[0, 16]])
  assert.equal(Buffer.concat(out.chunks).length, 15)
})

test('an empty EOF block at the end is acknowledged one past the last byte', () => {
  const { rb, out, ranges } = make()
  rb.take(block(0, 7))
  rb.take(block(7, 0, EOF_SUCCESS))
  assert.deepEqual(out.ends, [EOF_SUCCESS])
  assert.deepEqual(ranges(), [[0, 8]])
})

test('a failure EOF ends the stream at once, bytes missing or not', () => {
  const { rb, out, ranges } = make()
  rb.take(block(0, 4))
  rb.take(block(10, 0, EOF_FAILURE))
  assert.deepEqual(out.ends, [EOF_FAILURE])
  assert.deepEqual(ranges(), [[0, 4]], 'the EOF is not acknowledged: bytes before it never came')
})

test('blocks past the EOF and a second, different EOF are dropped', () => {
  const { rb, drops, out } = make()
  rb.take(block(0, 5))
  rb.take(block(10, 5, EOF_SUCCESS))
  assert.equal(rb.take(block(15, 5)), true)
  assert.equal(rb.take(block(5, 2, EOF_SUCCESS)), true, 'an EOF before bytes we hold')
  assert.equal(drops.afterEof, 2)
  rb.take(block(5, 5))
  assert.deepEqual(out.ends, [EOF_SUCCESS])
  assert.equal(Buffer.concat(out.chunks).length, 15)
})

test('an EOF before bytes already held is dropped: no stream ends there', () => {
  const { rb, drops, out, ranges } = make()
  rb.take(block(20, 10))
  assert.equal(rb.take(block(10, 5, EOF_SUCCESS)), true)
  assert.equal(drops.afterEof, 1)
  rb.take(block(0, 20))
  assert.deepEqual(out.ends, [], 'the stream goes on past position 15')
  assert.deepEqual(ranges(), [[0, 30]])
})

test('closing from inside onData stops everything after it: no end follows', () => {
  const calls: number[] = []
  const drops = { beyondWindow: 0, afterEof: 0, outOfOrderFull: 0, duplicate: 0 }
  const rb: ReceiveBuffer = new ReceiveBuffer({ onData: (d) => (calls.push(d.length), rb.close()), onEnd: () => calls.push(-1) }, drops)
  rb.take(block(10, 0, EOF_SUCCESS))
  rb.take(block(0, 10))
  assert.deepEqual(calls, [10], 'the bytes, then nothing: the EOF they completed is not reported')
  assert.equal(rb.take(block(10, 5)), true)
  assert.deepEqual(calls, [10])
})
