// AckList (connections/ack-list.ts): the ids owed an ACK, held as bytes, make the same frames as encodeAck.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { AckList } from '../src/connections/ack-list.js'
import { decodeFrame, encodeAck, FRAME_ACK } from '../src/connections/frames.js'

test('AckList: ids copied in (not views), framed as encodeAck frames them, at most perFrame per frame', () => {
  const ids = Array.from({ length: 1000 }, () => randomBytes(16))
  const list = new AckList()
  // Each id at an offset of a bigger packet, which is then overwritten: the list kept copies.
  for (const id of ids) {
    const packet = Buffer.concat([randomBytes(7), id, randomBytes(9)])
    list.push(packet, 7)
    packet.fill(0)
  }
  assert.equal(list.length, ids.length)
  assert.deepEqual([...list].map((b) => b.toString('hex')), ids.map((b) => b.toString('hex')))
  const frames = list.frames(300)
  assert.equal(frames.length, 4)
  const expected = [0, 300, 600, 900].map((i) => encodeAck(ids.slice(i, i + 300)))
  assert.deepEqual(frames, expected)
  const last = decodeFrame((frames[3] as Buffer).subarray(4))
  assert.equal(last.type, FRAME_ACK)
  assert.equal(last.type === FRAME_ACK && last.ids.length, 100)
})
