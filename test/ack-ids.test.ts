/**
 * The ids a channel owes ACKs for (src/connections/ack-ids.ts): one buffer laid out as the ACK
 * frame, 16 bytes an id. Its frames decode (frames.ts) to the ids pushed, in order, split at the
 * per-frame bound; what it holds is about 16 bytes an id, not an object each.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { AckIds } from '../src/connections/ack-ids.js'
import { FRAME_ACK, FrameDecoder, decodeFrame, encodeAck } from '../src/connections/frames.js'

function decodeAll(frames: Buffer[]): Buffer[] {
  const ids: Buffer[] = []
  const decoder = new FrameDecoder()
  for (const f of frames) {
    decoder.push(f, (body) => {
      const frame = decodeFrame(body)
      assert.equal(frame.type, FRAME_ACK)
      if (frame.type === FRAME_ACK) ids.push(...frame.ids.map((id) => Buffer.from(id)))
    })
  }
  return ids
}

test('the frames carry every id pushed, in order, at most maxIds a frame', () => {
  for (const [count, max] of [[1, 4096], [64, 4096], [65, 4096], [4096, 4096], [4097, 4096], [10_000, 4096], [7, 3]] as const) {
    const ids = Array.from({ length: count }, () => randomBytes(16))
    const list = new AckIds(ids[0])
    for (const id of ids.slice(1)) list.push(id)
    assert.equal(list.length, count)
    const frames = list.frames(max)
    assert.equal(frames.length, Math.ceil(count / max), `${count} ids, ${max} a frame`)
    assert.deepEqual(decodeAll(frames), ids)
    // The same bytes as the codec's own ACK frames.
    assert.deepEqual(Buffer.concat(frames), Buffer.concat(Array.from({ length: frames.length }, (_, i) => encodeAck(ids.slice(i * max, (i + 1) * max)))))
  }
})

test('a pushed id is copied: the caller may reuse its buffer', () => {
  const scratch = Buffer.alloc(16, 1)
  const list = new AckIds(scratch)
  scratch.fill(2)
  list.push(scratch)
  scratch.fill(3)
  assert.deepEqual(decodeAll(list.frames(4096)), [Buffer.alloc(16, 1), Buffer.alloc(16, 2)])
})

test('an id that is not 16 bytes is refused (it would put stale bytes on the wire)', () => {
  const list = new AckIds()
  assert.throws(() => list.push(Buffer.alloc(15)), { code: 'ERR_INVALID_ARGUMENT' })
  assert.equal(list.length, 0)
})

test('65,536 held ids cost at most 2 MiB (16 bytes an id, at most doubled by growth)', () => {
  const list = new AckIds()
  const id = randomBytes(16)
  for (let i = 0; i < 65_536; i++) list.push(id)
  assert.ok(list.byteLength <= 2 * 65_536 * 16 + 5, `${list.byteLength} bytes`)
  assert.ok(list.byteLength >= 65_536 * 16)
})
