/**
 * Platform frames (src/connections/frames.ts, the hand-written layout): round trips, the exact byte
 * layout, the stream decoder at every split, the size bound, malformed bodies (unknown type or
 * flags, truncated fields, empty protocol, non-finite expiresAt, PING with a body, ACK bodies that
 * are not whole ids), what decoded and encoded buffers alias, and arbitrary bytes (only
 * DecodeError, ever).
 *
 * frame  = length:u32be type:u8 body
 * DATA 1 = flags:u8 id:16 protocolLen:u8 protocol topicLen:u16be topic [expiresAt:f64be if flags&1]
 *          payload (the rest; UTF-8 text if flags&2, else bytes; flags&4: durable id)
 * ACK  2 = id:16 ...
 * PING 3 = (empty)
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import fc from './helpers/fast-check.js'
import { DecodeError, InvalidArgumentError } from '../src/errors.js'
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_ACK,
  FRAME_DATA,
  FRAME_HEADER_BYTES,
  FRAME_PING,
  FrameDecoder,
  MESSAGE_ID_BYTES,
  decodeFrame,
  encodeAck,
  encodeData,
  encodePing,
  type DataFrame,
  type Frame
} from '../src/connections/frames.js'
import { mutate, type Mutation } from '../scripts/fuzz.js'

const id = (n: number): Buffer => Buffer.alloc(16, n)

/** The body of an encoded frame (what FrameDecoder hands out), after checking its header. */
function body(frame: Buffer): Buffer {
  assert.equal(frame.readUInt32BE(0), frame.length - 4, 'the length counts type + body')
  return frame.subarray(4)
}

function throwsDecode(fn: () => unknown, what: string): void {
  assert.throws(fn, (err: unknown) => err instanceof DecodeError && err.code === 'ERR_DECODE', what)
}

/** Encoders: bad input from the local caller is an InvalidArgumentError, not a DecodeError. */
function throwsInvalid(fn: () => unknown, what: string): void {
  assert.throws(fn, (err: unknown) => err instanceof InvalidArgumentError && err.code === 'ERR_INVALID_ARGUMENT', what)
}

function collect(decoder: FrameDecoder, chunks: Buffer[]): Frame[] {
  const out: Frame[] = []
  for (const c of chunks) decoder.push(c, (b) => out.push(decodeFrame(Buffer.from(b))))
  return out
}

// ------------------------------------------------------------------------------------------------
// Hand-built bodies, to write what the encoder never would.
// ------------------------------------------------------------------------------------------------
const u8 = (...bytes: number[]): Buffer => Buffer.from(bytes)
const be16 = (n: number): Buffer => u8(n >> 8, n & 0xff)
const be32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
const f64 = (x: number): Buffer => {
  const b = Buffer.alloc(8)
  b.writeDoubleBE(x)
  return b
}
interface RawData {
  flags: number
  id: Buffer
  protocol: Buffer
  /** Written as protocolLen; defaults to protocol.length. */
  protocolLen?: number
  topic: Buffer
  /** Written as topicLen; defaults to topic.length. */
  topicLen?: number
  expires?: Buffer
  payload: Buffer
}
/** A DATA body (type byte first), field by field. */
const rawData = (r: RawData): Buffer =>
  Buffer.concat([
    u8(FRAME_DATA, r.flags),
    r.id,
    u8(r.protocolLen ?? r.protocol.length),
    r.protocol,
    be16(r.topicLen ?? r.topic.length),
    r.topic,
    r.expires ?? Buffer.alloc(0),
    r.payload
  ])
/** The fields of a valid DATA body (text payload, expiresAt set); override some to make a bad one. */
const valid = (over: Partial<RawData> = {}): Buffer =>
  rawData({ flags: 3, id: id(1), protocol: Buffer.from('proto'), topic: Buffer.from('topic'), expires: f64(1000.5), payload: Buffer.from('payload'), ...over })

describe('round trips', () => {
  const cases: Array<Omit<DataFrame, 'type'>> = [
    { id: id(1), protocol: 'mm/1', topic: 'chat.room', payload: Buffer.from([0, 1, 2, 255]) },
    { id: id(2), protocol: 'mm/1', topic: 'chat.room', payload: 'plain text' },
    { id: id(3), protocol: 'p', topic: 'x', expiresAt: 1_700_000_000_123, payload: Buffer.alloc(0) },
    { id: id(4), protocol: 'p', topic: '', expiresAt: 0, payload: '' },
    { id: id(5), protocol: 'prötöcol/ü', topic: 'ünïcødé.トピック.😀', expiresAt: -1.5, payload: 'текст ✓ 😀' },
    { id: id(6), protocol: 'x'.repeat(255), topic: 't'.repeat(65535), payload: Buffer.alloc(100_000, 9) },
    { id: id(7), protocol: 'ms', topic: 'durable', expiresAt: 5, payload: 'from the outbox', durable: true },
    { id: id(7), protocol: 'mm/1', topic: 'big', expiresAt: Number.MAX_VALUE, payload: 'a'.repeat(70_000) },
    { id: id(8), protocol: 'mm/1', topic: 'ints', expiresAt: 100, payload: Buffer.alloc(1, 0x64) },
    { id: id(9), protocol: 'mm/1', topic: 'min', expiresAt: Number.MIN_VALUE, payload: 'x' },
    { id: id(10), protocol: 'mm/1', topic: 'neg-zero', expiresAt: -0, payload: Buffer.from('text-looking bytes') },
    { id: id(11), protocol: '🔒', topic: '🔑'.repeat(16383), payload: '' }
  ]
  for (const [i, c] of cases.entries()) {
    test(`DATA ${i}: ${typeof c.payload === 'string' ? 'text' : 'bytes'} payload, expiresAt ${c.expiresAt === undefined ? 'absent' : 'present'}, topic ${JSON.stringify(c.topic.slice(0, 20))}`, () => {
      const frame = encodeData(c)
      const d = decodeFrame(body(frame))
      assert.equal(d.type, FRAME_DATA)
      if (d.type !== FRAME_DATA) return
      assert.deepEqual(d.id, c.id)
      assert.equal(d.protocol, c.protocol)
      assert.equal(d.topic, c.topic)
      assert.equal(typeof d.payload, typeof c.payload, 'text stays text, bytes stay bytes')
      if (typeof c.payload !== 'string') assert.ok(Buffer.isBuffer(d.payload), 'bytes arrive as a Buffer')
      assert.deepEqual(d.payload, c.payload)
      assert.equal('expiresAt' in d, c.expiresAt !== undefined)
      assert.ok(Object.is(d.expiresAt, c.expiresAt), `expiresAt ${c.expiresAt} exactly (f64)`)
      assert.equal(d.durable === true, c.durable === true, 'the durable flag round-trips')
    })
  }

  test('DATA layout: length, type, flags, id, protocolLen, protocol, topicLen, topic, [expiresAt], payload', () => {
    const text = encodeData({ id: id(0xaa), protocol: 'pr', topic: 'tó', expiresAt: 2.5, payload: 'hi' })
    const textBody = Buffer.concat([
      u8(0x03), // flags: expiresAt present (1) | text payload (2)
      id(0xaa),
      u8(2), // protocolLen
      Buffer.from('pr'),
      u8(0, 3), // topicLen (ó is two bytes)
      Buffer.from('tó'),
      u8(0x40, 0x04, 0, 0, 0, 0, 0, 0), // f64be 2.5
      Buffer.from('hi')
    ])
    assert.deepEqual(text, Buffer.concat([be32(1 + textBody.length), u8(FRAME_DATA), textBody]))
    assert.equal(text.toString('hex'), '0000002401' + '03' + 'aa'.repeat(16) + '02' + '7072' + '0003' + '74c3b3' + '4004000000000000' + '6869')

    const bytes = encodeData({ id: id(0xbb), protocol: 'p', topic: '', payload: Buffer.from([1, 2, 3]) })
    const bytesBody = Buffer.concat([u8(0x00), id(0xbb), u8(1), Buffer.from('p'), u8(0, 0), u8(1, 2, 3)])
    assert.deepEqual(bytes, Buffer.concat([be32(1 + bytesBody.length), u8(FRAME_DATA), bytesBody]), 'no expiresAt: flag 1 clear, no 8 bytes; bytes payload: flag 2 clear')

    const textNoExpiry = encodeData({ id: id(0xcc), protocol: 'p', topic: 't', payload: '' })
    assert.deepEqual(body(textNoExpiry), Buffer.concat([u8(FRAME_DATA, 0x02), id(0xcc), u8(1), Buffer.from('p'), u8(0, 1), Buffer.from('t')]), 'an empty text payload is zero bytes')

    // The frame header is exactly FRAME_HEADER_BYTES: length (4) + type (1).
    assert.equal(FRAME_HEADER_BYTES, 5)
    assert.equal(MESSAGE_ID_BYTES, 16)
  })

  test('ACK with one and with many ids', () => {
    for (const n of [1, 2, 15, 16, 100, 4096]) {
      const ids = Array.from({ length: n }, (_, i) => Buffer.from(Buffer.alloc(16, i & 0xff).fill(i >> 8, 0, 1)))
      const frame = encodeAck(ids)
      assert.equal(frame.length, FRAME_HEADER_BYTES + 16 * n)
      assert.deepEqual(frame, Buffer.concat([be32(1 + 16 * n), u8(FRAME_ACK), ...ids]), 'the ids back to back')
      const d = decodeFrame(body(frame))
      assert.equal(d.type, FRAME_ACK)
      if (d.type === FRAME_ACK) assert.deepEqual(d.ids, ids)
    }
    throwsInvalid(() => encodeAck([]), 'an empty ACK')
  })

  test('PING', () => {
    const frame = encodePing()
    assert.deepEqual(frame, Buffer.from([0, 0, 0, 1, FRAME_PING]))
    assert.deepEqual(decodeFrame(body(frame)), { type: FRAME_PING })
  })

  test('the encoder refuses what the decoder would refuse', () => {
    const ok = { id: id(1), protocol: 'p', topic: 't', payload: 'x' }
    throwsInvalid(() => encodeData({ ...ok, id: Buffer.alloc(15) }), 'short id')
    throwsInvalid(() => encodeData({ ...ok, id: Buffer.alloc(17) }), 'long id')
    throwsInvalid(() => encodeData({ ...ok, id: Buffer.alloc(0) }), 'empty id')
    throwsInvalid(() => encodeData({ ...ok, protocol: '' }), 'empty protocol')
    throwsInvalid(() => encodeData({ ...ok, protocol: 'x'.repeat(256) }), 'protocol over 255 bytes')
    throwsInvalid(() => encodeData({ ...ok, protocol: 'ü'.repeat(128) }), 'protocol over 255 bytes of UTF-8')
    throwsInvalid(() => encodeData({ ...ok, topic: 't'.repeat(65536) }), 'topic over 65535 bytes')
    throwsInvalid(() => encodeData({ ...ok, topic: 'é'.repeat(32768) }), 'topic over 65535 bytes of UTF-8')
    for (const expiresAt of [NaN, Infinity, -Infinity]) throwsInvalid(() => encodeData({ ...ok, expiresAt }), `expiresAt ${expiresAt}`)
  })

  test('ACK ids that are not 16 bytes are refused (no unzeroed bytes on the wire)', () => {
    for (const n of [0, 1, 15, 17, 32]) {
      throwsInvalid(() => encodeAck([id(1), Buffer.alloc(n)]), `ACK with an id of ${n} bytes after a good one`)
      throwsInvalid(() => encodeAck([Buffer.alloc(n)]), `ACK with one id of ${n} bytes`)
    }
  })
})

describe('what the buffers alias', () => {
  test('a decoded id and bytes payload are views into the body (documented; the manager copies the id it keeps)', () => {
    const b = Buffer.from(body(encodeData({ id: id(1), protocol: 'p', topic: 't', payload: Buffer.alloc(64, 7) })))
    const d = decodeFrame(b) as DataFrame
    assert.deepEqual(d.id, id(1))
    b.fill(0)
    assert.deepEqual(d.id, Buffer.alloc(16), 'the id is a view into the body')
    assert.deepEqual(d.payload, Buffer.alloc(64), 'the bytes payload is a view into the body')
    // Strings are copies.
    const t = Buffer.from(body(encodeData({ id: id(2), protocol: 'p', topic: 'topic', payload: 'text' })))
    const dt = decodeFrame(t) as DataFrame
    t.fill(0)
    assert.equal(dt.topic, 'topic')
    assert.equal(dt.payload, 'text')
  })

  test('an encoded frame owns its bytes: frames do not alias each other or the inputs', () => {
    const payload = Buffer.alloc(1000, 4)
    const frameId = id(4)
    const frame = encodeData({ id: frameId, protocol: 'p', topic: 't', payload })
    const before = Buffer.from(frame)
    payload.fill(0)
    frameId.fill(0)
    assert.deepEqual(frame, before, 'changing the inputs after encoding changes nothing')
    const f1 = encodeData({ id: id(5), protocol: 'p', topic: 't', payload: 'one' })
    const copy1 = Buffer.from(f1)
    for (let i = 0; i < 100; i++) encodeData({ id: id(6), protocol: 'p', topic: 't', payload: Buffer.alloc(500, i) })
    assert.deepEqual(f1, copy1)
    const ids = [id(7), id(8)]
    const ack = encodeAck(ids)
    ids[0]?.fill(0)
    assert.deepEqual(decodeFrame(body(ack)), { type: FRAME_ACK, ids: [id(7), id(8)] })
  })

  test('a large frame gets a buffer of exactly its size', () => {
    const big = encodeData({ id: id(1), protocol: 'p', topic: 't', payload: Buffer.alloc(3 * 1024 * 1024, 1) })
    assert.equal(big.buffer.byteLength, big.length)
    const d = decodeFrame(body(big)) as DataFrame
    assert.equal((d.payload as Buffer).length, 3 * 1024 * 1024)
  })
})

describe('FrameDecoder', () => {
  const stream = Buffer.concat([
    encodeData({ id: id(1), protocol: 'mm/1', topic: 'a.b', payload: Buffer.alloc(40, 1) }),
    encodePing(),
    encodeData({ id: id(2), protocol: 'mm/1', topic: 'ü', expiresAt: 5.25, payload: 'text ✓' }),
    encodeAck([id(1), id(2)]),
    encodeData({ id: id(3), protocol: 'p', topic: '', payload: Buffer.alloc(0) })
  ])
  const expected = collect(new FrameDecoder(), [stream])

  test('one chunk: every frame, in order', () => {
    assert.deepEqual(
      expected.map((f) => f.type),
      [FRAME_DATA, FRAME_PING, FRAME_DATA, FRAME_ACK, FRAME_DATA]
    )
    assert.equal((expected[2] as DataFrame).payload, 'text ✓')
    assert.equal((expected[2] as DataFrame).expiresAt, 5.25)
  })

  test('split at every byte boundary (two chunks), and one byte at a time', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      assert.deepEqual(collect(new FrameDecoder(), [stream.subarray(0, cut), stream.subarray(cut)]), expected, `cut at ${cut}`)
    }
    const bytes = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1))
    assert.deepEqual(collect(new FrameDecoder(), bytes), expected)
  })

  test('split at every pair of boundaries (three chunks)', () => {
    for (let a = 0; a <= stream.length; a += 3) {
      for (let b = a; b <= stream.length; b += 5) {
        const got = collect(new FrameDecoder(), [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)])
        assert.deepEqual(got, expected, `cuts at ${a}, ${b}`)
      }
    }
  })

  test('property: any chunking gives the same frames', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 12 }), (cuts) => {
        const points = [0, ...cuts.sort((x, y) => x - y), stream.length]
        const chunks = points.slice(1).map((p, i) => stream.subarray(points[i], p))
        assert.deepEqual(collect(new FrameDecoder(), chunks), expected)
      }),
      { numRuns: 500 }
    )
  })

  test('a declared length over the maximum throws at the header, before the body is buffered', () => {
    const decoder = new FrameDecoder(1024)
    const header = Buffer.alloc(4)
    header.writeUInt32BE(1025)
    let bodies = 0
    throwsDecode(() => decoder.push(header, () => bodies++), 'declared 1025 > 1024')
    assert.equal(bodies, 0)
    // Exactly the maximum is fine: a one-id ACK is type + 16 bytes.
    const ack = encodeAck([id(1)])
    assert.equal(ack.length - 4, 1 + 16)
    assert.equal(collect(new FrameDecoder(ack.length - 4), [ack]).length, 1)
    throwsDecode(() => collect(new FrameDecoder(ack.length - 5), [ack]), 'one byte over a small maximum')
    // The default bound, declared by a 4-byte header alone.
    const big = Buffer.alloc(4)
    big.writeUInt32BE(DEFAULT_MAX_FRAME_BYTES + 1)
    throwsDecode(() => new FrameDecoder().push(big, () => {}), 'over the default maximum')
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff])
    throwsDecode(() => new FrameDecoder().push(huge, () => {}), '4 GiB declared')
    // Split header: still refused as soon as the 4 bytes are in.
    const d2 = new FrameDecoder(1024)
    d2.push(header.subarray(0, 3), () => bodies++)
    throwsDecode(() => d2.push(header.subarray(3), () => bodies++), 'split header')
    assert.equal(bodies, 0)
  })

  test('a zero length throws', () => {
    throwsDecode(() => new FrameDecoder().push(Buffer.alloc(4), () => {}), 'length 0')
  })

  test('an empty chunk is ignored', () => {
    const d = new FrameDecoder()
    d.push(Buffer.alloc(0), () => assert.fail('no frame'))
    assert.deepEqual(collect(d, [Buffer.alloc(0), stream, Buffer.alloc(0)]), expected)
  })
})

describe('malformed bodies throw DecodeError', () => {
  const good = body(encodeData({ id: id(1), protocol: 'proto', topic: 'topic', expiresAt: 1000.5, payload: 'payload' }))

  test('the hand-built valid body decodes (the base of the cases below)', () => {
    assert.deepEqual(valid(), good)
    assert.deepEqual(decodeFrame(valid()), { type: FRAME_DATA, id: id(1), protocol: 'proto', topic: 'topic', expiresAt: 1000.5, payload: 'payload' })
  })

  test('empty body and unknown types', () => {
    throwsDecode(() => decodeFrame(Buffer.alloc(0)), 'empty')
    for (const type of [0, 4, 5, 0x7f, 0x80, 0xff]) {
      throwsDecode(() => decodeFrame(u8(type)), `type ${type} alone`)
      throwsDecode(() => decodeFrame(Buffer.concat([u8(type), good.subarray(1)])), `type ${type} with a DATA body`)
    }
  })

  test('DATA: unknown flag bits', () => {
    for (const flags of [8, 0x10, 0x20, 0x40, 0x80, 0x0f, 0xff]) throwsDecode(() => decodeFrame(valid({ flags })), `flags 0x${flags.toString(16)}`)
    // The four known combinations decode.
    for (const flags of [0, 1, 2, 3]) {
      const d = decodeFrame(valid({ flags, expires: flags & 1 ? f64(7) : Buffer.alloc(0) })) as DataFrame
      assert.equal('expiresAt' in d, (flags & 1) === 1)
      assert.equal(typeof d.payload, flags & 2 ? 'string' : 'object')
    }
  })

  test('DATA truncated in every fixed field, at every length', () => {
    const variants: Array<[string, Buffer]> = [
      ['text, expiresAt', good],
      ['bytes, no expiresAt', body(encodeData({ id: id(2), protocol: 'mm/1', topic: 'a.b.c', payload: Buffer.alloc(50, 1) }))],
      ['bytes, expiresAt, empty topic', body(encodeData({ id: id(3), protocol: 'p', topic: '', expiresAt: 1_700_000_000_000, payload: Buffer.alloc(10, 2) }))],
      ['text, unicode', body(encodeData({ id: id(4), protocol: 'prötö', topic: 'トピック', expiresAt: 1, payload: '✓' }))]
    ]
    for (const [what, b] of variants) {
      const d = decodeFrame(b) as DataFrame
      const payloadBytes = typeof d.payload === 'string' ? Buffer.byteLength(d.payload) : d.payload.length
      const payloadStart = b.length - payloadBytes
      // Everything before the payload is a fixed or declared-length field: cutting it throws.
      for (let n = 1; n < payloadStart; n++) throwsDecode(() => decodeFrame(b.subarray(0, n)), `${what}: truncated to ${n} of ${payloadStart} header bytes`)
      // The payload is the rest: a shorter body is a shorter payload (the frame length delimits it).
      assert.equal((decodeFrame(b.subarray(0, payloadStart)) as DataFrame).payload.length, 0, `${what}: empty payload`)
    }
  })

  test('DATA: a declared protocol or topic length past the end', () => {
    throwsDecode(() => decodeFrame(valid({ protocolLen: 255 })), 'protocolLen 255 over a 5-byte protocol and little after it')
    throwsDecode(() => decodeFrame(valid({ topicLen: 0xffff })), 'topicLen 65535 over what is left')
    // A topicLen that eats half the expiresAt: the expiresAt is then short.
    const b = valid({ flags: 1, topicLen: 5 + 4, payload: Buffer.alloc(0) })
    throwsDecode(() => decodeFrame(b), 'topic eats part of the expiresAt')
  })

  test('DATA: a zero-length protocol', () => {
    throwsDecode(() => decodeFrame(valid({ protocol: Buffer.alloc(0) })), 'empty protocol')
    throwsDecode(() => decodeFrame(valid({ protocolLen: 0 })), 'protocolLen 0 with protocol bytes after it')
    assert.equal((decodeFrame(valid({ protocol: Buffer.from('x'.repeat(255)) })) as DataFrame).protocol.length, 255)
  })

  test('DATA: a non-finite expiresAt', () => {
    const nans = [f64(NaN), u8(0x7f, 0xf8, 0, 0, 0, 0, 0, 1), u8(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), u8(0x7f, 0xf0, 0, 0, 0, 0, 0, 1)]
    for (const expires of [f64(Infinity), f64(-Infinity), ...nans]) throwsDecode(() => decodeFrame(valid({ expires })), `expiresAt ${expires.toString('hex')}`)
    // The largest finite values are fine.
    for (const x of [Number.MAX_VALUE, -Number.MAX_VALUE]) assert.equal((decodeFrame(valid({ expires: f64(x) })) as DataFrame).expiresAt, x)
  })

  test('PING with a body', () => {
    for (const rest of [u8(0), u8(FRAME_PING), Buffer.alloc(16)]) throwsDecode(() => decodeFrame(Buffer.concat([u8(FRAME_PING), rest])), `PING + ${rest.length} byte(s)`)
  })

  test('ACK: no ids, or a body that is not a multiple of 16 bytes', () => {
    throwsDecode(() => decodeFrame(u8(FRAME_ACK)), 'ACK with no id')
    for (const n of [1, 15, 17, 31, 33, 16 * 100 + 1]) throwsDecode(() => decodeFrame(Buffer.concat([u8(FRAME_ACK), Buffer.alloc(n, 1)])), `ACK body of ${n} bytes`)
    for (const n of [16, 32, 48]) assert.equal((decodeFrame(Buffer.concat([u8(FRAME_ACK), Buffer.alloc(n, 1)])) as { ids: Buffer[] }).ids.length, n / 16)
  })
})

describe('properties (fast-check)', () => {
  const seeds = [
    body(encodeData({ id: id(1), protocol: 'mm/1', topic: 'chat', payload: Buffer.alloc(64, 3) })),
    body(encodeData({ id: id(2), protocol: 'p', topic: 'ü', expiresAt: 7.5, payload: 'text' })),
    body(encodeData({ id: id(3), protocol: 'p', topic: 't', expiresAt: 1_700_000_000_000, payload: Buffer.alloc(0) })),
    body(encodeAck([id(1), id(2), id(3)])),
    body(encodePing())
  ]
  const onlyDecodeError = (fn: () => unknown): boolean => {
    try {
      fn()
      return true
    } catch (err) {
      if (err instanceof DecodeError) return true
      throw err
    }
  }

  test('decodeFrame on arbitrary bytes never throws anything but DecodeError', () => {
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.tuple(fc.constantFrom(FRAME_DATA, FRAME_ACK, FRAME_PING), fc.uint8Array({ maxLength: 300 })).map(([t, rest]) => Buffer.concat([Buffer.from([t]), rest])),
      // A DATA type byte and known flags, then anything: gets past the first checks.
      fc.tuple(fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 300 })).map(([flags, rest]) => Buffer.concat([u8(FRAME_DATA, flags), rest]))
    )
    fc.assert(fc.property(arb, (bytes) => onlyDecodeError(() => decodeFrame(Buffer.from(bytes)))), { numRuns: 5000 })
  })

  test('decodeFrame and FrameDecoder on mutated valid frames never throw anything but DecodeError', () => {
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('extend' as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
      fc.record({ kind: fc.constant('splice' as const), other: fc.constantFrom(...seeds), at: fc.nat(), from: fc.nat() })
    )
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.nat(), (seed, ms, cut) => {
        const b = mutate(seed, ms)
        const framed = Buffer.concat([Buffer.from([0, 0, 0, 0]), b])
        framed.writeUInt32BE(b.length)
        const at = cut % (framed.length + 1)
        return (
          onlyDecodeError(() => decodeFrame(b)) &&
          onlyDecodeError(() => {
            const d = new FrameDecoder(4096)
            for (const c of [framed.subarray(0, at), framed.subarray(at)]) d.push(c, (x) => decodeFrame(x))
          })
        )
      }),
      { numRuns: 5000 }
    )
  })

  test('arbitrary DATA frames round trip', () => {
    const arb = fc.record(
      {
        id: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((u) => Buffer.from(u)),
        protocol: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => Buffer.byteLength(s) <= 255),
        topic: fc.string({ unit: 'grapheme', maxLength: 40 }),
        expiresAt: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.integer({ min: 2 ** 32, max: Number.MAX_SAFE_INTEGER })),
        payload: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 100 }), fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)))
      },
      { requiredKeys: ['id', 'protocol', 'topic', 'payload'] }
    )
    fc.assert(
      fc.property(arb, (f) => {
        const d = decodeFrame(body(encodeData(f))) as DataFrame
        assert.deepEqual(d.id, f.id)
        assert.equal(d.protocol, f.protocol)
        assert.equal(d.topic, f.topic)
        assert.equal(typeof d.payload, typeof f.payload)
        assert.deepEqual(d.payload, f.payload)
        assert.equal('expiresAt' in d, f.expiresAt !== undefined)
        // Exact: an f64 on the wire, -0 included.
        assert.ok(Object.is(d.expiresAt, f.expiresAt), `expiresAt ${f.expiresAt} -> ${d.expiresAt}`)
      }),
      { numRuns: 1000 }
    )
  })
})
