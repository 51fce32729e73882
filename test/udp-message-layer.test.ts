/**
 * The message-layer codec: vectors captured from DJB's curvecpmessage (decoded field by field
 * and re-encoded byte for byte), the layout of every field, and hostile input.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {
  EOF_FAILURE,
  EOF_SUCCESS,
  MAX_BLOCK_BYTES,
  MessageReader,
  decodeMessage,
  decodeMessageInto,
  encodeMessage,
  encodeMessageHead,
  maxBlockBytesFor,
  messageLengthFor,
  type EndOfStream
} from '../src/curvecp/message-layer.js'
import { ROOT } from './helpers/index.js'

interface Vector {
  description: string
  direction: string
  hex: string
  id: number
  acknowledging: number
  ranges: Array<[number, number]>
  eof: number
  offset: number
  dataHex: string
}

const doc = JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'vectors', 'curvecp-message-curvecpmessage.json'), 'utf8')) as { vectors: Vector[] }

test('vectors from curvecpmessage decode field by field', () => {
  assert.ok(doc.vectors.length >= 10)
  for (const v of doc.vectors) {
    const m = decodeMessage(Buffer.from(v.hex, 'hex'))
    assert.equal(m.id, v.id, v.description)
    assert.equal(m.acknowledging, v.acknowledging, v.description)
    assert.deepEqual(m.ranges.map((r) => [r.start, r.end]), v.ranges, v.description)
    assert.equal(m.eof, v.eof, v.description)
    assert.equal(m.offset, v.offset, v.description)
    assert.equal(Buffer.from(m.data).toString('hex'), v.dataHex, v.description)
  }
})

test('our encoder writes the same bytes as curvecpmessage, length choice included', () => {
  for (const v of doc.vectors) {
    const bytes = encodeMessage({
      id: v.id,
      acknowledging: v.acknowledging,
      ranges: v.ranges.map(([start, end]) => ({ start, end })),
      eof: v.eof as EndOfStream,
      offset: v.offset,
      data: Buffer.from(v.dataHex, 'hex')
    })
    assert.equal(bytes.toString('hex'), v.hex, v.description)
  }
  // The reference's own messages: a ping, pure acknowledgements, 1024- and 952-byte blocks.
  const ours = doc.vectors.filter((v) => v.direction === 'from-curvecpmessage')
  assert.ok(ours.some((v) => v.id === 0) && ours.some((v) => v.dataHex.length === 2048) && ours.some((v) => v.eof === EOF_SUCCESS))
})

test('a head written into a used scratch buffer, then the data, is the reference message byte for byte', () => {
  // The stream seals head + data straight into its packet from one reused scratch buffer: every
  // byte of the head (ranges left empty, the zero padding) must be written, not left over.
  const scratch = Buffer.alloc(1088, 0xee)
  for (const v of doc.vectors) {
    const data = Buffer.from(v.dataHex, 'hex')
    const ranges = v.ranges.map(([start, end]) => ({ start, end }))
    const head = encodeMessageHead(scratch, v.id, v.acknowledging, ranges, v.eof as EndOfStream, v.offset, data.length)
    assert.equal(Buffer.concat([scratch.subarray(0, head), data]).toString('hex'), v.hex, v.description)
    scratch.fill(0xee)
  }
  // The Initiate's room: whole 16s after the header.
  const head = encodeMessageHead(scratch, 1, 0, [], 0, 0, 600, 656)
  assert.equal(head, 656 - 600)
  assert.ok(scratch.subarray(8, 38).every((b) => b === 0) && scratch.subarray(48, head).every((b) => b === 0))
  assert.throws(() => encodeMessageHead(Buffer.alloc(100), 1, 0, [], 0, 0, 10), /cannot hold/)
})

test('field offsets follow messages.html: ids, six ranges, D and flags, offset, data last', () => {
  const m = encodeMessage({
    id: 0x01020304,
    acknowledging: 0x0a0b0c0d,
    ranges: [
      { start: 0, end: 0x0102030405 },
      { start: 0x0102030405 + 7, end: 0x0102030405 + 7 + 0x1111 },
      { start: 0x0102030405 + 7 + 0x1111 + 2, end: 0x0102030405 + 7 + 0x1111 + 2 + 3 },
      { start: 0x0102030405 + 7 + 0x1111 + 2 + 3 + 4, end: 0x0102030405 + 7 + 0x1111 + 2 + 3 + 4 + 5 },
      { start: 0x0102030405 + 7 + 0x1111 + 2 + 3 + 4 + 5 + 6, end: 0x0102030405 + 7 + 0x1111 + 2 + 3 + 4 + 5 + 6 + 0xffff },
      { start: 0x0102030405 + 7 + 0x1111 + 2 + 3 + 4 + 5 + 6 + 0xffff + 0xffff, end: 0x0102030405 + 7 + 0x1111 + 2 + 3 + 4 + 5 + 6 + 0xffff + 0xffff + 9 }
    ],
    eof: EOF_FAILURE,
    offset: 0x0000_0102_0304_0506,
    data: Buffer.from('abc')
  })
  assert.equal(m.length, 192)
  const hex = m.subarray(0, 48).toString('hex')
  assert.equal(
    hex,
    [
      '04030201', // id
      '0d0c0b0a', // acknowledging
      '0504030201000000', // range 1 size (u64)
      '07000000', // gap 1-2 (u32)
      '1111', // range 2 size
      '0200', '0300', // gap, range 3
      '0400', '0500', // gap, range 4
      '0600', 'ffff', // gap, range 5
      'ffff', '0900', // gap, range 6
      '0310', // D = 3, + 4096 failure
      '0605040302010000' // offset (u64)
    ].join('')
  )
  assert.ok(m.subarray(48, 189).equals(Buffer.alloc(141)), 'zero padding')
  assert.equal(m.subarray(189).toString(), 'abc', 'data at the end')
  const back = decodeMessage(m)
  assert.equal(back.ranges.length, 6)
  assert.equal(back.eof, EOF_FAILURE)
  assert.equal(back.offset, 0x0000_0102_0304_0506)
})

test('message lengths: the reference buckets, or whole 16s where they do not fit', () => {
  assert.equal(messageLengthFor(0), 192)
  assert.equal(messageLengthFor(128), 192)
  assert.equal(messageLengthFor(129), 320)
  assert.equal(messageLengthFor(512), 576)
  assert.equal(messageLengthFor(513), 1088)
  assert.equal(messageLengthFor(1024), 1088)
  assert.equal(messageLengthFor(300, 528), 352, 'an Initiate with our extension: 48 + 300 rounded to 16')
  assert.equal(messageLengthFor(480, 528), 528)
  assert.throws(() => messageLengthFor(481, 528), { code: 'ERR_INVALID_ARGUMENT' })
  assert.throws(() => messageLengthFor(1025), { code: 'ERR_INVALID_ARGUMENT' })
  assert.equal(maxBlockBytesFor(1088), MAX_BLOCK_BYTES)
  assert.equal(maxBlockBytesFor(640), 592)
  assert.equal(maxBlockBytesFor(528), 480)
  assert.equal(maxBlockBytesFor(40), 0)
})

test('one-byte and empty blocks round-trip; both EOF flags read as failure', () => {
  for (const data of [Buffer.alloc(0), Buffer.from('x')]) {
    for (const eof of [0, EOF_SUCCESS, EOF_FAILURE] as const) {
      const m = decodeMessage(encodeMessage({ id: 7, acknowledging: 0, ranges: [], eof, offset: 41, data }))
      assert.deepEqual([m.id, m.eof, m.offset, Buffer.from(m.data).toString()], [7, eof, 41, data.toString()])
    }
  }
  const both = encodeMessage({ id: 1, acknowledging: 0, ranges: [], eof: 0, offset: 0, data: Buffer.alloc(0) })
  both.writeUInt16LE(EOF_SUCCESS | EOF_FAILURE, 38)
  assert.equal(decodeMessage(both).eof, EOF_FAILURE)
})

test('hostile messages throw DecodeError only', () => {
  const base = (): Buffer => encodeMessage({ id: 1, acknowledging: 0, ranges: [], eof: 0, offset: 0, data: Buffer.from('hello') })
  const cases: Buffer[] = [Buffer.alloc(0), Buffer.alloc(47), Buffer.alloc(1089), Buffer.alloc(4096)]
  const bigD = base()
  bigD.writeUInt16LE(1025, 38)
  cases.push(bigD)
  const overLen = Buffer.alloc(64)
  overLen.writeUInt16LE(17, 38) // 48 + 17 > 64
  cases.push(overLen)
  const farOffset = base()
  farOffset.writeUInt32LE(0xffff_ffff, 44)
  cases.push(farOffset)
  const farRange = base()
  farRange.writeUInt32LE(0xffff_ffff, 12)
  cases.push(farRange)
  const highBits = base()
  highBits.writeUInt16LE(0x8000 | 5, 38)
  cases.push(highBits)
  for (const c of cases) assert.throws(() => decodeMessage(c), { code: 'ERR_DECODE' }, `${c.length} bytes`)
  // Random input never throws anything but DecodeError.
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.alloc(48 + ((i * 37) % 1041))
    for (let j = 0; j < b.length; j++) b[j] = (i * 131 + j * 17) & 0xff
    try {
      decodeMessage(b)
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'ERR_DECODE')
    }
  }
})

test('the encoder refuses what the format cannot say', () => {
  const ok = { id: 1, acknowledging: 0, ranges: [], eof: 0 as const, offset: 0, data: Buffer.alloc(0) }
  assert.throws(() => encodeMessage({ ...ok, id: 2 ** 32 }), { code: 'ERR_INVALID_ARGUMENT' })
  assert.throws(() => encodeMessage({ ...ok, eof: 1 as unknown as EndOfStream }), { code: 'ERR_INVALID_ARGUMENT' })
  assert.throws(() => encodeMessage({ ...ok, ranges: [{ start: 0, end: 10 }, { start: 20, end: 20 + 65536 }] }), { code: 'ERR_INVALID_ARGUMENT' })
  assert.throws(() => encodeMessage({ ...ok, ranges: [{ start: 0, end: 10 }, { start: 5, end: 8 }] }), { code: 'ERR_INVALID_ARGUMENT' })
  assert.throws(() => encodeMessage({ ...ok, ranges: [{ start: 0, end: 1 }, { start: 2, end: 3 }, { start: 4, end: 5 }, { start: 6, end: 7 }, { start: 8, end: 9 }, { start: 10, end: 11 }, { start: 12, end: 13 }] }), { code: 'ERR_INVALID_ARGUMENT' })
  assert.throws(() => encodeMessage({ ...ok, ranges: [{ start: 0, end: 1 }, { start: 2, end: 3 }, { start: 3 + 65536, end: 3 + 65537 }] }), { code: 'ERR_INVALID_ARGUMENT' })
  // Without a range from 0, range 1 is empty and the first range goes into slot 2.
  const m = decodeMessage(encodeMessage({ ...ok, ranges: [{ start: 100, end: 200 }] }))
  assert.deepEqual(m.ranges, [{ start: 100, end: 200 }])
})

test('one reader decodes message after message: each decode replaces every field of the one before', () => {
  const reader = new MessageReader()
  const many = encodeMessage({ id: 9, acknowledging: 4, ranges: [{ start: 0, end: 50 }, { start: 60, end: 70 }, { start: 80, end: 90 }, { start: 100, end: 110 }, { start: 120, end: 130 }, { start: 140, end: 150 }], eof: EOF_FAILURE, offset: 500, data: Buffer.from('abc') })
  const few = encodeMessage({ id: 0, acknowledging: 0, ranges: [{ start: 7, end: 9 }], eof: 0, offset: 0, data: Buffer.alloc(0) })
  const plain = (m: { id: number; acknowledging: number; ranges: readonly { start: number; end: number }[]; eof: number; offset: number; data: Uint8Array }): unknown => ({
    id: m.id,
    acknowledging: m.acknowledging,
    ranges: m.ranges.map((r) => [r.start, r.end]),
    eof: m.eof,
    offset: m.offset,
    data: Buffer.from(m.data).toString('hex')
  })
  for (const bytes of [many, few, many, few]) {
    assert.equal(decodeMessageInto(bytes, reader), reader)
    assert.deepEqual(plain(reader), plain(decodeMessage(bytes)))
  }
  // A refused message leaves no ranges of the one before behind.
  decodeMessageInto(many, reader)
  assert.throws(() => decodeMessageInto(Buffer.alloc(47), reader), { code: 'ERR_DECODE' })
  assert.equal(reader.ranges.length, 0)
})
