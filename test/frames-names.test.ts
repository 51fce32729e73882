/**
 * The fast paths of the frame codec (src/connections/frames.ts): protocol and topic names copied
 * by hand when short and ASCII, names memoised by their bytes when decoded (a fixed, direct-mapped
 * memo), and text payloads written into the frame and read out of it with Node's UTF-8 codec
 * directly. Each must give exactly what Buffer.from / toString give, whatever the bytes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from './helpers/fast-check.js'
import { FRAME_DATA, decodeFrame, encodeData, type DataFrame } from '../src/connections/frames.js'

const id = Buffer.alloc(16, 1)

function roundTrip(f: Omit<DataFrame, 'type'>, room = 0): DataFrame {
  const frame = encodeData(f, room)
  assert.equal(frame.readUInt32BE(0), frame.length - 4)
  const d = decodeFrame(Buffer.from(frame.subarray(4)))
  assert.equal(d.type, FRAME_DATA)
  return d as DataFrame
}

/** The body of a DATA frame with raw name bytes (to write what the encoder never would). */
function rawBody(protocol: Buffer, topic: Buffer, payload: Buffer): Buffer {
  const head = Buffer.alloc(2 + 16)
  head[0] = FRAME_DATA
  head[1] = 2 // text payload
  id.copy(head, 2)
  const tl = Buffer.alloc(2)
  tl.writeUInt16BE(topic.length)
  return Buffer.concat([head, Buffer.from([protocol.length]), protocol, tl, topic, payload])
}

test('names of the same length and slot but other bytes decode each to its own string', () => {
  // Same length, same first, middle and last byte: the same memo slot. Alternated, each must
  // still come back as itself (a memo that trusted the slot alone would return the other).
  const names = ['abcdef', 'axcdef', 'aycdef', 'abcdzf']
  for (let round = 0; round < 3; round++) {
    for (const topic of names) {
      for (const protocol of names) {
        const d = roundTrip({ id, protocol, topic, payload: 'x' })
        assert.equal(d.topic, topic)
        assert.equal(d.protocol, protocol)
      }
    }
  }
})

test('many distinct topics, repeated: every decode is exact', () => {
  const topics = Array.from({ length: 300 }, (_, i) => `chat.room.${i}`)
  for (let round = 0; round < 2; round++) {
    for (const topic of topics) assert.equal(roundTrip({ id, protocol: 'ms', topic, payload: '1' }).topic, topic)
  }
})

test('names at and around the short-name bounds, ASCII and not', () => {
  for (const n of [1, 2, 31, 32, 33, 64, 255]) {
    for (const unit of ['a', 'é', '€', '😀']) {
      const protocol = unit.repeat(Math.max(1, Math.floor(n / Buffer.byteLength(unit))))
      const topic = unit.repeat(n)
      for (let twice = 0; twice < 2; twice++) {
        const d = roundTrip({ id, protocol, topic, payload: '' })
        assert.equal(d.protocol, protocol, `protocol of ${Buffer.byteLength(protocol)} bytes of ${unit}`)
        assert.equal(d.topic, topic, `topic of ${Buffer.byteLength(topic)} bytes of ${unit}`)
      }
      // The bytes on the wire are Buffer.from's.
      const frame = encodeData({ id, protocol, topic, payload: '' })
      const at = 5 + 1 + 16 + 1
      assert.deepEqual(frame.subarray(at, at + Buffer.byteLength(protocol)), Buffer.from(protocol))
      const topicAt = at + Buffer.byteLength(protocol) + 2
      assert.equal(frame.readUInt16BE(topicAt - 2), Buffer.byteLength(topic))
      assert.deepEqual(frame.subarray(topicAt, topicAt + Buffer.byteLength(topic)), Buffer.from(topic))
    }
  }
})

test('lone surrogates in names and payloads are written as Buffer.from writes them', () => {
  for (const s of ['a\ud800b', '\udfff', 'x\ud83d', 'ok\u0000\u007f']) {
    const frame = encodeData({ id, protocol: 'p' + s, topic: s, payload: s })
    const d = decodeFrame(frame.subarray(4)) as DataFrame
    const expect = Buffer.from(s).toString()
    assert.equal(d.topic, expect)
    assert.equal(d.protocol, 'p' + expect)
    assert.equal(d.payload, expect)
    assert.deepEqual(frame.subarray(frame.length - Buffer.byteLength(s)), Buffer.from(s))
  }
})

test('invalid UTF-8 in names decodes as toString decodes it, memoised or not', () => {
  const bad = [Buffer.from([0xff]), Buffer.from([0x61, 0xc3]), Buffer.from([0xe2, 0x82]), Buffer.from([0x80, 0x80, 0x61])]
  for (let round = 0; round < 2; round++) {
    for (const topic of bad) {
      const d = decodeFrame(rawBody(Buffer.from('ms'), topic, Buffer.from([0x7b, 0xff, 0x7d]))) as DataFrame
      assert.equal(d.topic, topic.toString('utf8'))
      assert.equal(d.payload, Buffer.from([0x7b, 0xff, 0x7d]).toString('utf8'))
    }
  }
})

test('JSON text payloads written in place round-trip: non-ASCII, large, empty, with spare room', () => {
  const texts = [
    JSON.stringify({ seq: 1, text: 'x'.repeat(1000) }),
    JSON.stringify({ é: 'ünïcødé ✓ 😀 トピック', n: [1, 2, 3] }),
    JSON.stringify('a'.repeat(3 * 1024 * 1024)),
    JSON.stringify({ mixed: 'ascii then ü'.repeat(5000) }),
    '""',
    ''
  ]
  for (const payload of texts) {
    for (const room of [0, 128]) {
      const frame = encodeData({ id, protocol: 'ms', topic: 'json', expiresAt: 5, payload, durable: true }, room)
      const d = decodeFrame(frame.subarray(4)) as DataFrame
      assert.equal(d.payload, payload)
      assert.equal(frame.length, 5 + 1 + 16 + 1 + 2 + 2 + 4 + 8 + Buffer.byteLength(payload), 'the frame is exactly as long as its fields')
      assert.deepEqual(frame.subarray(frame.length - Buffer.byteLength(payload)), Buffer.from(payload), "the payload's bytes are Buffer.from's")
      assert.equal(d.durable, true)
      assert.equal(d.expiresAt, 5)
    }
  }
})

test('a decoded frame has exactly the fields of its flags', () => {
  const keys = (f: Omit<DataFrame, 'type'>): string[] => Object.keys(roundTrip(f)).sort()
  const base = ['id', 'payload', 'protocol', 'topic', 'type']
  assert.deepEqual(keys({ id, protocol: 'p', topic: 't', payload: 'x' }), base)
  assert.deepEqual(keys({ id, protocol: 'p', topic: 't', payload: 'x', durable: true }), [...base, 'durable'].sort())
  assert.deepEqual(keys({ id, protocol: 'p', topic: 't', payload: 'x', expiresAt: 1 }), [...base, 'expiresAt'].sort())
  assert.deepEqual(keys({ id, protocol: 'p', topic: 't', payload: 'x', expiresAt: 1, durable: true }), [...base, 'durable', 'expiresAt'].sort())
})

test('property: any name bytes, in any order and repeated, decode as toString decodes them', () => {
  const name = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((u) => Buffer.from(u))
  fc.assert(
    fc.property(fc.array(fc.tuple(name, fc.oneof(name, fc.constant(Buffer.alloc(0)))), { minLength: 1, maxLength: 30 }), (pairs) => {
      for (let round = 0; round < 2; round++) {
        for (const [protocol, topic] of pairs) {
          const d = decodeFrame(rawBody(protocol, topic, Buffer.from('1'))) as DataFrame
          assert.equal(d.protocol, protocol.toString('utf8'))
          assert.equal(d.topic, topic.toString('utf8'))
        }
      }
    }),
    { numRuns: 500 }
  )
})
