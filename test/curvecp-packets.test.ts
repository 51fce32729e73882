/**
 * CurveCP packet codec: fixed vectors built from the layout in curvecp.org/packets.html
 * (test/vectors/curvecp-packets.json), round trips, the UDP and stream limits, and hostile input:
 * decoders throw only DecodeError, the handshake and session methods never throw at all.
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import fc from './helpers/fast-check.js'
import { DecodeError, InvalidArgumentError } from '../src/errors.js'
import {
  CLIENT_MESSAGE_BASE_BYTES,
  COOKIE_PACKET_BYTES,
  HELLO_BYTES,
  INITIATE_BASE_BYTES,
  SERVER_MESSAGE_BASE_BYTES,
  STREAM_MAX_INITIATE_MESSAGE_BYTES,
  STREAM_MAX_MESSAGE_BYTES,
  UDP_MAX_INITIATE_MESSAGE_BYTES,
  UDP_MAX_MESSAGE_BYTES
} from '../src/curvecp/constants.js'
import {
  COOKIE_BOX_BYTES,
  HELLO_BOX_BYTES,
  INITIATE_INNER_BASE_BYTES,
  STREAM_LIMITS,
  UDP_LIMITS,
  decodeClientMessage,
  decodeCookie,
  decodeCookieInner,
  decodeHello,
  decodeInitiate,
  decodeInitiateInner,
  decodeServerMessage,
  encodeClientMessage,
  encodeCookie,
  encodeCookieInner,
  encodeHello,
  encodeInitiate,
  encodeInitiateInner,
  encodeServerMessage,
  packetKind,
  type PacketLimits
} from '../src/curvecp/packets.js'
import { ClientHandshake, ServerHandshake } from '../src/curvecp/handshake.js'
import type { Session } from '../src/curvecp/session.js'
import { boxBeforeNm, boxPublicFromSecret, secretbox, secretboxOpen } from '../src/crypto/sodium.js'
import { longTermNonce } from '../src/curvecp/nonces.js'
import { NONCE_COOKIE } from '../src/curvecp/constants.js'
import { Identity, type IdentityLike } from '../src/identity/identity.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import { mutate, type Mutation } from '../scripts/fuzz.js'

interface Vectors {
  source: string
  fields: { serverExtension: string; clientExtension: string; clientShortTermKey: string }
  hello: { nonce: string; box: string; bytes: number; packet: string }
  cookie: { nonce: string; box: string; bytes: number; packet: string }
  initiate: { cookie: string; nonce: string; box: string; messageBytes: number; bytes: number; packet: string }
  clientMessage: { nonce: string; box: string; messageBytes: number; bytes: number; packet: string }
  serverMessage: { nonce: string; box: string; messageBytes: number; bytes: number; packet: string }
  helloWithBox: {
    clientShortTermSecret: string
    clientShortTermKey: string
    serverLongTermSecret: string
    serverLongTermKey: string
    nonce: string
    box: string
    packet: string
  }
}

const V = JSON.parse(fs.readFileSync(new URL('./vectors/curvecp-packets.json', import.meta.url), 'utf8')) as Vectors
const hex = (s: string): Buffer => Buffer.from(s, 'hex')
const F = {
  serverExtension: hex(V.fields.serverExtension),
  clientExtension: hex(V.fields.clientExtension),
  clientShortTermKey: hex(V.fields.clientShortTermKey)
}
const ascii = (b: Buffer, from: number, to: number): string => b.subarray(from, to).toString('latin1')

function isDecodeError(err: unknown): boolean {
  return err instanceof DecodeError && err.code === 'ERR_DECODE'
}

/** Asserts fn throws a DecodeError (and nothing else). */
function throwsDecode(fn: () => unknown, what: string): void {
  assert.throws(fn, (err: unknown) => isDecodeError(err), what)
}

/** Asserts fn throws an InvalidArgumentError (encoders: the local caller's mistake). */
function throwsInvalid(fn: () => unknown, what: string): void {
  assert.throws(fn, (err: unknown) => err instanceof InvalidArgumentError && err.code === 'ERR_INVALID_ARGUMENT', what)
}

/** fn returns, or throws a DecodeError; anything else fails the property. */
function returnsOrDecodeError(fn: () => unknown): boolean {
  try {
    fn()
    return true
  } catch (err) {
    if (isDecodeError(err)) return true
    throw err
  }
}

describe('fixed vectors (curvecp.org/packets.html layout)', () => {
  test('the vector file names its source', () => {
    assert.match(V.source, /curvecp\.org\/packets\.html/)
  })

  test('Hello: 224 bytes, exact layout', () => {
    const packet = encodeHello({ ...F, nonce: hex(V.hello.nonce), box: hex(V.hello.box) })
    assert.equal(packet.length, 224)
    assert.equal(HELLO_BYTES, 224)
    assert.equal(packet.toString('hex'), V.hello.packet)
    assert.equal(ascii(packet, 0, 8), 'QvnQ5XlH')
    assert.deepEqual(packet.subarray(8, 24), F.serverExtension)
    assert.deepEqual(packet.subarray(24, 40), F.clientExtension)
    assert.deepEqual(packet.subarray(40, 72), F.clientShortTermKey)
    assert.deepEqual(packet.subarray(72, 136), Buffer.alloc(64), '64 zero bytes of padding')
    assert.deepEqual(packet.subarray(136, 144), hex(V.hello.nonce))
    assert.deepEqual(packet.subarray(144, 224), hex(V.hello.box))
    const d = decodeHello(hex(V.hello.packet))
    assert.deepEqual(d, { ...F, nonce: hex(V.hello.nonce), box: hex(V.hello.box) })
    assert.equal(packetKind(packet), 'hello')
  })

  test('Cookie: 200 bytes, exact layout (client extension first)', () => {
    const packet = encodeCookie({ clientExtension: F.clientExtension, serverExtension: F.serverExtension, nonce: hex(V.cookie.nonce), box: hex(V.cookie.box) })
    assert.equal(packet.length, 200)
    assert.equal(COOKIE_PACKET_BYTES, 200)
    assert.equal(packet.toString('hex'), V.cookie.packet)
    assert.equal(ascii(packet, 0, 8), 'RL3aNMXK')
    assert.deepEqual(packet.subarray(8, 24), F.clientExtension)
    assert.deepEqual(packet.subarray(24, 40), F.serverExtension)
    assert.deepEqual(packet.subarray(40, 56), hex(V.cookie.nonce))
    assert.deepEqual(packet.subarray(56, 200), hex(V.cookie.box))
    assert.equal(COOKIE_BOX_BYTES, 144, 'box of S\' (32) and K (96) plus 16')
    const d = decodeCookie(hex(V.cookie.packet))
    assert.deepEqual(d, { clientExtension: F.clientExtension, serverExtension: F.serverExtension, nonce: hex(V.cookie.nonce), box: hex(V.cookie.box) })
    assert.equal(packetKind(packet), 'cookie')
  })

  test('Initiate: 544+M bytes, exact layout', () => {
    const fields = { ...F, cookie: hex(V.initiate.cookie), nonce: hex(V.initiate.nonce), box: hex(V.initiate.box) }
    for (const limits of [UDP_LIMITS, STREAM_LIMITS]) {
      const packet = encodeInitiate(fields, limits)
      assert.equal(packet.length, 544 + V.initiate.messageBytes)
      assert.equal(packet.length, V.initiate.bytes)
      assert.equal(INITIATE_BASE_BYTES, 544)
      assert.equal(packet.toString('hex'), V.initiate.packet)
      assert.equal(ascii(packet, 0, 8), 'QvnQ5XlI')
      assert.deepEqual(packet.subarray(8, 24), F.serverExtension)
      assert.deepEqual(packet.subarray(24, 40), F.clientExtension)
      assert.deepEqual(packet.subarray(40, 72), F.clientShortTermKey)
      assert.deepEqual(packet.subarray(72, 168), hex(V.initiate.cookie))
      assert.deepEqual(packet.subarray(168, 176), hex(V.initiate.nonce))
      assert.deepEqual(packet.subarray(176), hex(V.initiate.box))
      assert.deepEqual(decodeInitiate(hex(V.initiate.packet), limits), fields)
      assert.equal(packetKind(packet), 'initiate')
    }
    assert.equal(INITIATE_INNER_BASE_BYTES, 352, 'C (32), vouch nonce (16), vouch (48), domain name (256)')
  })

  test('Client Message: 96+M bytes, exact layout', () => {
    const fields = { ...F, nonce: hex(V.clientMessage.nonce), box: hex(V.clientMessage.box) }
    for (const limits of [UDP_LIMITS, STREAM_LIMITS]) {
      const packet = encodeClientMessage(fields, limits)
      assert.equal(packet.length, 96 + V.clientMessage.messageBytes)
      assert.equal(CLIENT_MESSAGE_BASE_BYTES, 96)
      assert.equal(packet.toString('hex'), V.clientMessage.packet)
      assert.equal(ascii(packet, 0, 8), 'QvnQ5XlM')
      assert.deepEqual(packet.subarray(8, 24), F.serverExtension)
      assert.deepEqual(packet.subarray(24, 40), F.clientExtension)
      assert.deepEqual(packet.subarray(40, 72), F.clientShortTermKey)
      assert.deepEqual(packet.subarray(72, 80), hex(V.clientMessage.nonce))
      assert.deepEqual(packet.subarray(80), hex(V.clientMessage.box))
      assert.deepEqual(decodeClientMessage(hex(V.clientMessage.packet), limits), fields)
      assert.equal(packetKind(packet), 'client-message')
    }
  })

  test('Server Message: 64+M bytes, exact layout (client extension first)', () => {
    const fields = { clientExtension: F.clientExtension, serverExtension: F.serverExtension, nonce: hex(V.serverMessage.nonce), box: hex(V.serverMessage.box) }
    for (const limits of [UDP_LIMITS, STREAM_LIMITS]) {
      const packet = encodeServerMessage(fields, limits)
      assert.equal(packet.length, 64 + V.serverMessage.messageBytes)
      assert.equal(SERVER_MESSAGE_BASE_BYTES, 64)
      assert.equal(packet.toString('hex'), V.serverMessage.packet)
      assert.equal(ascii(packet, 0, 8), 'RL3aNMXM')
      assert.deepEqual(packet.subarray(8, 24), F.clientExtension)
      assert.deepEqual(packet.subarray(24, 40), F.serverExtension)
      assert.deepEqual(packet.subarray(40, 48), hex(V.serverMessage.nonce))
      assert.deepEqual(packet.subarray(48), hex(V.serverMessage.box))
      assert.deepEqual(decodeServerMessage(hex(V.serverMessage.packet), limits), fields)
      assert.equal(packetKind(packet), 'server-message')
    }
  })

  test('a Hello boxed with libsodium crypto_box from fixed keys: same box through beforenm + secretbox, and a server with that key answers it', () => {
    const v = V.helloWithBox
    const cSecret = hex(v.clientShortTermSecret)
    const sSecret = hex(v.serverLongTermSecret)
    assert.deepEqual(boxPublicFromSecret(cSecret), hex(v.clientShortTermKey))
    assert.deepEqual(boxPublicFromSecret(sSecret), hex(v.serverLongTermKey))
    const k = boxBeforeNm(hex(v.serverLongTermKey), cSecret)
    assert.ok(k)
    assert.equal(secretbox(Buffer.alloc(64), hex(v.nonce), k).toString('hex'), v.box)
    const nonce = hex(v.nonce)
    assert.equal(ascii(nonce, 0, 16), 'CurveCP-client-H')
    const packet = encodeHello({
      serverExtension: Buffer.alloc(16),
      clientExtension: Buffer.alloc(16),
      clientShortTermKey: hex(v.clientShortTermKey),
      nonce: nonce.subarray(16),
      box: hex(v.box)
    })
    assert.equal(packet.toString('hex'), v.packet)

    const serverIdentity: IdentityLike = {
      getSignId: () => 'unused',
      getBoxId: () => hex(v.serverLongTermKey).toString('base64'),
      sign: () => Buffer.alloc(64),
      boxBeforeNm: (their) => boxBeforeNm(their, sSecret)
    }
    const server = new ServerHandshake({ identity: serverIdentity, limits: UDP_LIMITS, auth: 'none' })
    const cookie = server.handleHello(packet)
    assert.ok(cookie, 'the server answers a spec-built Hello')
    assert.equal(cookie.length, 200)
    const c = decodeCookie(cookie)
    const plain = secretboxOpen(c.box, longTermNonce(NONCE_COOKIE, c.nonce), k)
    assert.ok(plain, 'the Cookie box opens with beforenm(S, c\') and nonce "CurveCPK" || 16 bytes')
    const inner = decodeCookieInner(plain)
    assert.equal(inner.serverShortTermKey.length, 32)
    assert.equal(inner.cookie.length, 96)
    server.close()
  })
})

describe('round trips and limits', () => {
  const field = (n: number, b: number): Buffer => Buffer.alloc(n, b)
  const initiate = (m: number) => ({ ...F, cookie: field(96, 6), nonce: field(8, 2), box: field(16 + INITIATE_INNER_BASE_BYTES + m, 9) })
  const clientMessage = (m: number) => ({ ...F, nonce: field(8, 3), box: field(16 + m, 4) })
  const serverMessage = (m: number) => ({ clientExtension: F.clientExtension, serverExtension: F.serverExtension, nonce: field(8, 3), box: field(16 + m, 5) })

  test('limit constants', () => {
    assert.equal(UDP_MAX_MESSAGE_BYTES, 1088)
    assert.equal(UDP_MAX_INITIATE_MESSAGE_BYTES, 640)
    assert.deepEqual(UDP_LIMITS, { maxMessage: 1088, maxInitiateMessage: 640, padded: true })
    assert.deepEqual(STREAM_LIMITS, { maxMessage: STREAM_MAX_MESSAGE_BYTES, maxInitiateMessage: STREAM_MAX_INITIATE_MESSAGE_BYTES, padded: false })
    assert.ok(STREAM_LIMITS.maxMessage > UDP_LIMITS.maxMessage)
    assert.ok(STREAM_LIMITS.maxInitiateMessage > UDP_LIMITS.maxInitiateMessage)
  })

  const cases: Array<[string, PacketLimits, number[], number[]]> = [
    ['UDP', UDP_LIMITS, [16, 32, 640], [0, 1, 15, 17, 24, 656, 1024]],
    ['stream', STREAM_LIMITS, [0, 1, 17, 640, 4096], [4097, 8192]]
  ]
  for (const [name, limits, ok, bad] of cases) {
    test(`Initiate under ${name} limits: M in ${ok.join(', ')} round trips; ${bad.join(', ')} refused both ways`, () => {
      for (const m of ok) {
        const p = initiate(m)
        const packet = encodeInitiate(p, limits)
        assert.equal(packet.length, 544 + m)
        assert.deepEqual(decodeInitiate(packet, limits), p)
      }
      for (const m of bad) {
        throwsInvalid(() => encodeInitiate(initiate(m), limits), `encode M=${m}`)
        const packet = encodeInitiate(initiate(m), { maxMessage: 1 << 20, maxInitiateMessage: 1 << 20, padded: false })
        throwsDecode(() => decodeInitiate(packet, limits), `decode M=${m}`)
      }
    })
  }

  const messageCases: Array<[string, PacketLimits, number[], number[]]> = [
    ['UDP', UDP_LIMITS, [16, 48, 1024, 1088], [0, 1, 15, 17, 1000, 1104, 2048]],
    ['stream', STREAM_LIMITS, [0, 1, 17, 1089, 65_536, STREAM_MAX_MESSAGE_BYTES], [STREAM_MAX_MESSAGE_BYTES + 1, 200_000]]
  ]
  for (const [name, limits, ok, bad] of messageCases) {
    test(`Client and Server Messages under ${name} limits: M in ${ok.join(', ')} round trips; ${bad.join(', ')} refused both ways`, () => {
      const loose: PacketLimits = { maxMessage: 1 << 20, maxInitiateMessage: 1 << 20, padded: false }
      for (const m of ok) {
        const c = encodeClientMessage(clientMessage(m), limits)
        assert.equal(c.length, 96 + m)
        assert.deepEqual(decodeClientMessage(c, limits), clientMessage(m))
        const s = encodeServerMessage(serverMessage(m), limits)
        assert.equal(s.length, 64 + m)
        assert.deepEqual(decodeServerMessage(s, limits), serverMessage(m))
      }
      for (const m of bad) {
        throwsInvalid(() => encodeClientMessage(clientMessage(m), limits), `encode client M=${m}`)
        throwsInvalid(() => encodeServerMessage(serverMessage(m), limits), `encode server M=${m}`)
        throwsDecode(() => decodeClientMessage(encodeClientMessage(clientMessage(m), loose), limits), `decode client M=${m}`)
        throwsDecode(() => decodeServerMessage(encodeServerMessage(serverMessage(m), loose), limits), `decode server M=${m}`)
      }
    })
  }

  test('inner boxes round trip', () => {
    const ci = { serverShortTermKey: field(32, 1), cookie: field(96, 2) }
    assert.deepEqual(decodeCookieInner(encodeCookieInner(ci)), ci)
    const ii = { clientLongTermKey: field(32, 1), vouchNonce: field(16, 2), vouch: field(48, 3), domainName: field(256, 4), message: field(37, 5) }
    const plain = encodeInitiateInner(ii)
    assert.equal(plain.length, 352 + 37)
    assert.deepEqual(decodeInitiateInner(plain), ii)
    throwsDecode(() => decodeCookieInner(field(127, 0)), 'cookie inner 127')
    throwsDecode(() => decodeCookieInner(field(129, 0)), 'cookie inner 129')
    throwsDecode(() => decodeInitiateInner(field(351, 0)), 'initiate inner 351')
  })

  test('encoders refuse fields of the wrong size with InvalidArgumentError', () => {
    const hello = { ...F, nonce: field(8, 0), box: field(HELLO_BOX_BYTES, 0) }
    for (const [key, size] of [['serverExtension', 15], ['clientExtension', 17], ['clientShortTermKey', 31], ['nonce', 9], ['box', 79]] as const) {
      throwsInvalid(() => encodeHello({ ...hello, [key]: field(size, 0) }), `Hello ${key}`)
    }
    const cookie = { clientExtension: F.clientExtension, serverExtension: F.serverExtension, nonce: field(16, 0), box: field(144, 0) }
    throwsInvalid(() => encodeCookie({ ...cookie, nonce: field(8, 0) }), 'Cookie nonce')
    throwsInvalid(() => encodeCookie({ ...cookie, box: field(145, 0) }), 'Cookie box')
    throwsInvalid(() => encodeInitiate({ ...initiate(16), cookie: field(95, 0) }, UDP_LIMITS), 'Initiate cookie')
    throwsInvalid(() => encodeClientMessage({ ...clientMessage(16), clientShortTermKey: field(33, 0) }, UDP_LIMITS), 'Client Message key')
  })
})

describe('hostile input to the decoders', () => {
  const valid = {
    hello: hex(V.hello.packet),
    cookie: hex(V.cookie.packet),
    initiate: hex(V.initiate.packet),
    clientMessage: hex(V.clientMessage.packet),
    serverMessage: hex(V.serverMessage.packet)
  }
  const magics = ['QvnQ5XlH', 'RL3aNMXK', 'QvnQ5XlI', 'QvnQ5XlM', 'RL3aNMXM', 'QvnQ5XlX', '\0\0\0\0\0\0\0\0']
  const withMagic = (packet: Buffer, magic: string): Buffer => Buffer.concat([Buffer.from(magic, 'latin1'), packet.subarray(8)])

  const decoders: Array<[keyof typeof valid, string, (b: Buffer, l: PacketLimits) => unknown]> = [
    ['hello', 'QvnQ5XlH', (b) => decodeHello(b)],
    ['cookie', 'RL3aNMXK', (b) => decodeCookie(b)],
    ['initiate', 'QvnQ5XlI', (b, l) => decodeInitiate(b, l)],
    ['clientMessage', 'QvnQ5XlM', (b, l) => decodeClientMessage(b, l)],
    ['serverMessage', 'RL3aNMXM', (b, l) => decodeServerMessage(b, l)]
  ]

  /** Whether a packet of `length` bytes is a valid size for its kind under `limits`. */
  const validLength = (name: keyof typeof valid, length: number, limits: PacketLimits): boolean => {
    if (name === 'hello') return length === 224
    if (name === 'cookie') return length === 200
    const base = name === 'initiate' ? 544 : name === 'clientMessage' ? 96 : 64
    const max = name === 'initiate' ? limits.maxInitiateMessage : limits.maxMessage
    const m = length - base
    return m >= 0 && m <= max && (!limits.padded || (m >= 16 && m % 16 === 0))
  }

  for (const [name, magic, decode] of decoders) {
    test(`${name}: truncated at every length, extended, and every wrong magic throw DecodeError`, () => {
      const packet = valid[name]
      for (const limits of [UDP_LIMITS, STREAM_LIMITS]) {
        let refused = 0
        const lengths = [...Array(packet.length).keys(), ...[1, 8, 15, 16, 17, 100, 1088, limits.maxMessage + 1].map((e) => packet.length + e)]
        for (const n of lengths) {
          const b = n <= packet.length ? packet.subarray(0, n) : Buffer.concat([packet, Buffer.alloc(n - packet.length, 0x55)])
          if (validLength(name, n, limits)) {
            assert.doesNotThrow(() => decode(b, limits), `${name} of ${n} bytes is valid`)
          } else {
            throwsDecode(() => decode(b, limits), `${name} of ${n} bytes`)
            refused++
          }
        }
        assert.ok(refused >= packet.length - 60, 'most truncations are refused')
        for (const m of magics) {
          if (m === magic) continue
          throwsDecode(() => decode(withMagic(packet, m), limits), `${name} with magic ${JSON.stringify(m)}`)
        }
        // The right magic with one bit flipped.
        for (let bit = 0; bit < 64; bit++) {
          const b = Buffer.from(packet)
          b[bit >> 3]! ^= 1 << (bit & 7)
          throwsDecode(() => decode(b, limits), `${name} magic bit ${bit}`)
        }
      }
    })
  }

  test('packetKind: null for short input, unknown magic, and never throws', () => {
    assert.equal(packetKind(Buffer.alloc(0)), null)
    assert.equal(packetKind(Buffer.from('QvnQ5Xl', 'latin1')), null)
    assert.equal(packetKind(Buffer.from('QvnQ5XlZ', 'latin1')), null)
    assert.equal(packetKind(Buffer.from('QvnQ5XlM', 'latin1')), 'client-message', 'kind by magic only; length is the decoder\'s job')
    assert.equal(packetKind(new Uint8Array(Buffer.from('RL3aNMXMxxxx', 'latin1'))), 'server-message')
  })
})

// ------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------

const mutationArb = (seeds: Buffer[]): fc.Arbitrary<Mutation> =>
  fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('extend' as const), bytes: fc.uint8Array({ maxLength: 80 }) }),
    fc.record({ kind: fc.constant('splice' as const), other: fc.constantFrom(...seeds), at: fc.nat(), from: fc.nat() })
  )

/** Arbitrary bytes, biased toward CurveCP magics and the sizes decoders look at. */
const hostileBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 1400 }),
  fc
    .tuple(
      fc.constantFrom('QvnQ5XlH', 'RL3aNMXK', 'QvnQ5XlI', 'QvnQ5XlM', 'RL3aNMXM'),
      fc.constantFrom(0, 1, 56, 88, 96, 104, 112, 192, 200, 216, 536, 552, 568, 1080, 1096, 1152, 1184)
    )
    .chain(([magic, n]) => fc.uint8Array({ minLength: n, maxLength: n }).map((tail) => new Uint8Array(Buffer.concat([Buffer.from(magic, 'latin1'), tail]))))
)

const ALL_DECODERS: Array<(b: Uint8Array) => unknown> = [
  (b) => packetKind(b),
  (b) => decodeHello(b),
  (b) => decodeCookie(b),
  (b) => decodeCookieInner(b),
  (b) => decodeInitiateInner(b),
  ...[UDP_LIMITS, STREAM_LIMITS].flatMap((l): Array<(b: Uint8Array) => unknown> => [
    (b) => decodeInitiate(b, l),
    (b) => decodeClientMessage(b, l),
    (b) => decodeServerMessage(b, l)
  ])
]

function identity(): Identity {
  return new Identity(new PlatformStorage(new MemoryStore()))
}

interface Live {
  server: ServerHandshake
  serverSession: Session
  clientSession: Session
  /** hello-sent */
  waitingForCookie: ClientHandshake
  /** initiate-sent */
  waitingForMessage: ClientHandshake
  seeds: Buffer[]
}

function live(limits: PacketLimits): Live {
  const serverId = identity()
  const clientId = identity()
  const server = new ServerHandshake({ identity: serverId, limits, auth: 'signid', now: () => 0 })
  const client = (): ClientHandshake =>
    new ClientHandshake({ identity: clientId, serverLongTermKey: Buffer.from(serverId.getBoxId(), 'base64'), limits, auth: 'signid' })
  const c = client()
  const hello = c.hello()
  const cookie = server.handleHello(hello)
  assert.ok(cookie)
  const initiate = c.handleCookie(cookie, Buffer.from('data'))
  assert.ok(initiate)
  const accepted = server.handleInitiate(initiate)
  assert.ok(accepted)
  const firstServerMessage = accepted.session.seal(Buffer.alloc(16, 1))
  const est = c.handleFirstServerMessage(firstServerMessage)
  assert.ok(est)
  const waitingForCookie = client()
  const hello2 = waitingForCookie.hello()
  const waitingForMessage = client()
  const cookie3 = server.handleHello(waitingForMessage.hello())
  assert.ok(cookie3)
  const initiate3 = waitingForMessage.handleCookie(cookie3)
  assert.ok(initiate3)
  const seeds = [hello, hello2, cookie, initiate, initiate3, firstServerMessage, est.session.seal(Buffer.alloc(32, 2)), accepted.session.seal(Buffer.alloc(48, 3))]
  return { server, serverSession: accepted.session, clientSession: est.session, waitingForCookie, waitingForMessage, seeds }
}

describe('properties (fast-check)', () => {
  const decoderSeeds = [hex(V.hello.packet), hex(V.cookie.packet), hex(V.initiate.packet), hex(V.clientMessage.packet), hex(V.serverMessage.packet)]

  test('every decoder and packetKind, on arbitrary bytes: returns or throws DecodeError, nothing else', () => {
    fc.assert(
      fc.property(hostileBytes, (bytes) => ALL_DECODERS.every((d) => returnsOrDecodeError(() => d(bytes)))),
      { numRuns: 3000 }
    )
  })

  test('packetKind never throws', () => {
    fc.assert(fc.property(hostileBytes, (bytes) => packetKind(bytes) === null || typeof packetKind(bytes) === 'string'), { numRuns: 2000 })
  })

  test('every decoder, on mutated valid packets (bit flips, byte sets, truncation, extension, splices): returns or throws DecodeError', () => {
    fc.assert(
      fc.property(fc.constantFrom(...decoderSeeds), fc.array(mutationArb(decoderSeeds), { minLength: 1, maxLength: 5 }), (seed, mutations) => {
        const bytes = mutate(seed, mutations)
        return ALL_DECODERS.every((d) => returnsOrDecodeError(() => d(bytes)))
      }),
      { numRuns: 3000 }
    )
  })

  for (const [name, limits] of [['UDP', UDP_LIMITS], ['stream', STREAM_LIMITS]] as const) {
    test(`${name}: handleHello, handleInitiate, handleCookie, handleFirstServerMessage and Session.open never throw on arbitrary input`, () => {
      const l = live(limits)
      fc.assert(
        fc.property(hostileBytes, (bytes) => {
          assert.equal(l.server.handleHello(bytes), null)
          assert.equal(l.server.handleInitiate(bytes), null)
          assert.equal(l.waitingForCookie.handleCookie(bytes), null)
          assert.equal(l.waitingForMessage.handleFirstServerMessage(bytes), null)
          assert.equal(l.serverSession.open(bytes), null)
          assert.equal(l.clientSession.open(bytes), null)
          return true
        }),
        { numRuns: 1000 }
      )
      assert.equal(l.waitingForCookie.state, 'hello-sent')
      assert.equal(l.waitingForMessage.state, 'initiate-sent')
    })

    test(`${name}: the same methods never throw on mutated packets from a real handshake`, () => {
      const l = live(limits)
      fc.assert(
        fc.property(fc.constantFrom(...l.seeds), fc.array(mutationArb(l.seeds), { minLength: 1, maxLength: 4 }), (seed, mutations) => {
          const bytes = mutate(seed, mutations)
          // Each returns a value or null; a throw fails the property.
          l.server.handleHello(bytes)
          l.server.handleInitiate(bytes)?.session.close()
          l.waitingForCookie.handleCookie(bytes)
          l.waitingForMessage.handleFirstServerMessage(bytes)
          l.serverSession.open(bytes)
          l.clientSession.open(bytes)
          return true
        }),
        { numRuns: 1000 }
      )
    })
  }
})
