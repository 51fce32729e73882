/**
 * CurveCP handshake, two parties stepped one message at a time (as wireguard-go's tests do), and
 * every refusal the server and client owe: rotated-out cookies, replayed Initiates, replayed /
 * reordered / tampered Messages, a Hello for another server, a vouch for another key, a spoofed
 * signId in the auth extension, an identity whose boxId is not ed2curve(signId), and a man in the
 * middle answering the Hello with its own key. Each refusal is checked over 200 attempts.
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidArgumentError, StateError } from '../src/errors.js'
import { Identity, type IdentityLike } from '../src/identity/identity.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import {
  boxBeforeNm,
  boxKeyPair,
  boxPublicFromSecret,
  randomBytes,
  secretbox,
  secretboxOpen,
  sign,
  signKeyPair,
  signPublicToBoxPublic,
  signSecretToBoxSecret
} from '../src/crypto/sodium.js'
import { NONCE_CLIENT_HELLO, NONCE_CLIENT_INITIATE, NONCE_COOKIE, NONCE_VOUCH, STREAM_MAX_MESSAGE_BYTES } from '../src/curvecp/constants.js'
import { longTermNonce, shortTermNonce } from '../src/curvecp/nonces.js'
import {
  STREAM_LIMITS,
  UDP_LIMITS,
  decodeCookie,
  decodeCookieInner,
  decodeHello,
  encodeCookie,
  encodeCookieInner,
  encodeHello,
  encodeInitiate,
  encodeInitiateInner,
  type PacketLimits
} from '../src/curvecp/packets.js'
import {
  AUTH_BYTES,
  AUTH_VERSION,
  ClientHandshake,
  ServerHandshake,
  encodeDomainName,
  type AuthMode,
  type ServerHandshakeOptions
} from '../src/curvecp/handshake.js'
import type { Session } from '../src/curvecp/session.js'
import { delay } from './helpers/index.js'

const ATTEMPTS = 200
const ZERO16 = Buffer.alloc(16)
/** The auth extension's signed context, as documented in handshake.ts. */
const AUTH_CONTEXT = Buffer.from('mm-platform/curvecp/initiate/v1', 'latin1')

function identity(): Identity {
  return new Identity(new PlatformStorage(new MemoryStore()))
}

const boxKeyOf = (id: IdentityLike): Buffer => Buffer.from(id.getBoxId(), 'base64')
const signKeyOf = (id: IdentityLike): Buffer => Buffer.from(id.getSignId(), 'base64')

function clientFor(id: IdentityLike, server: IdentityLike, limits: PacketLimits = STREAM_LIMITS, auth: AuthMode = 'signid'): ClientHandshake {
  return new ClientHandshake({ identity: id, serverLongTermKey: boxKeyOf(server), limits, auth })
}

function serverFor(id: IdentityLike, limits: PacketLimits = STREAM_LIMITS, extra: Partial<ServerHandshakeOptions> = {}): ServerHandshake {
  return new ServerHandshake({ identity: id, limits, auth: 'signid', ...extra })
}

/** Hello -> Cookie -> Initiate, returning the Initiate (not yet shown to the server). */
function toInitiate(client: ClientHandshake, server: ServerHandshake, data: Uint8Array = Buffer.alloc(0)): Buffer {
  const cookie = server.handleHello(client.hello())
  assert.ok(cookie, 'the server answers the Hello')
  const initiate = client.handleCookie(cookie, data)
  assert.ok(initiate, 'the client accepts the Cookie')
  return initiate
}

/** A full handshake; returns both sessions. */
function establish(client: ClientHandshake, server: ServerHandshake): { clientSession: Session; serverSession: Session } {
  const accepted = server.handleInitiate(toInitiate(client, server))
  assert.ok(accepted)
  const est = client.handleFirstServerMessage(accepted.session.seal(Buffer.alloc(16)))
  assert.ok(est)
  return { clientSession: est.session, serverSession: accepted.session }
}

function sum(drops: Record<string, number>): number {
  return Object.values(drops).reduce((a, b) => a + b, 0)
}

// ------------------------------------------------------------------------------------------------
// A hand-made client, to put what we like into an Initiate.
// ------------------------------------------------------------------------------------------------

interface CookieExchange {
  clientShortTerm: { publicKey: Buffer; secretKey: Buffer }
  serverLongTermKey: Buffer
  serverShortTermKey: Buffer
  cookie: Buffer
  /** beforenm(S', c') */
  sessionKey: Buffer
}

/** Sends a hand-built Hello to `server` and opens its Cookie. */
function cookieExchange(server: ServerHandshake, serverIdentity: IdentityLike): CookieExchange {
  const clientShortTerm = boxKeyPair()
  const S = boxKeyOf(serverIdentity)
  const helloKey = boxBeforeNm(S, clientShortTerm.secretKey)
  assert.ok(helloKey)
  const nonce = shortTermNonce(NONCE_CLIENT_HELLO, 1)
  const hello = encodeHello({
    serverExtension: ZERO16,
    clientExtension: ZERO16,
    clientShortTermKey: clientShortTerm.publicKey,
    nonce: nonce.subarray(16),
    box: secretbox(Buffer.alloc(64), nonce, helloKey)
  })
  const cookiePacket = server.handleHello(hello)
  assert.ok(cookiePacket)
  const c = decodeCookie(cookiePacket)
  const plain = secretboxOpen(c.box, longTermNonce(NONCE_COOKIE, c.nonce), helloKey)
  assert.ok(plain)
  const inner = decodeCookieInner(plain)
  const sessionKey = boxBeforeNm(inner.serverShortTermKey, clientShortTerm.secretKey)
  assert.ok(sessionKey)
  return { clientShortTerm, serverLongTermKey: S, serverShortTermKey: Buffer.from(inner.serverShortTermKey), cookie: Buffer.from(inner.cookie), sessionKey }
}

/** The message the auth extension signs: context || C' || S' || S. */
function authMessage(clientShortTerm: Buffer, serverShortTerm: Buffer, serverLongTerm: Buffer): Buffer {
  return Buffer.concat([AUTH_CONTEXT, clientShortTerm, serverShortTerm, serverLongTerm])
}

/** The Ed25519 public key of the negated point: another signId with the same ed2curve (X25519) key. */
function flipSignBit(signId: Buffer): Buffer {
  const b = Buffer.from(signId)
  b[31]! ^= 0x80
  return b
}

function authExtension(signId: Buffer, signature: Buffer, version = AUTH_VERSION): Buffer {
  return Buffer.concat([Buffer.from([version]), signId, signature])
}

interface CraftOptions {
  /** C as written in the Initiate box. */
  clientLongTermKey: Buffer
  /** Makes the vouch: beforenm(S, secret of some long-term key). */
  vouchKey: Buffer
  /** The C' inside the vouch (default: the exchange's real C'). */
  vouchedKey?: Buffer
  message: Buffer
  limits?: PacketLimits
}

function craftInitiate(ex: CookieExchange, o: CraftOptions): Buffer {
  const vouchNonce = randomBytes(16)
  const vouch = secretbox(o.vouchedKey ?? ex.clientShortTerm.publicKey, longTermNonce(NONCE_VOUCH, vouchNonce), o.vouchKey)
  const nonce = shortTermNonce(NONCE_CLIENT_INITIATE, 2)
  const inner = encodeInitiateInner({
    clientLongTermKey: o.clientLongTermKey,
    vouchNonce,
    vouch,
    domainName: encodeDomainName(''),
    message: o.message
  })
  return encodeInitiate(
    {
      serverExtension: ZERO16,
      clientExtension: ZERO16,
      clientShortTermKey: ex.clientShortTerm.publicKey,
      cookie: ex.cookie,
      nonce: nonce.subarray(16),
      box: secretbox(inner, nonce, ex.sessionKey)
    },
    o.limits ?? STREAM_LIMITS
  )
}

/** An identity with separate raw keys, for the attacks that need them. */
interface RawIdentity extends IdentityLike {
  signSecret: Buffer
  boxSecret: Buffer
}

function rawIdentity(): RawIdentity {
  const { publicKey, secretKey } = signKeyPair()
  const boxSecret = signSecretToBoxSecret(secretKey)
  return {
    signSecret: secretKey,
    boxSecret,
    getSignId: () => publicKey.toString('base64'),
    getBoxId: () => boxPublicFromSecret(boxSecret).toString('base64'),
    sign: (m) => sign(m, secretKey),
    boxBeforeNm: (their) => boxBeforeNm(their, boxSecret)
  }
}

// ------------------------------------------------------------------------------------------------

describe('two-party handshake, stepped one message at a time', () => {
  for (const [name, limits] of [['UDP', UDP_LIMITS], ['stream', STREAM_LIMITS]] as const) {
    test(`${name}: new -> hello-sent -> initiate-sent -> established, data in every step arrives`, () => {
      const serverId = identity()
      const clientId = identity()
      const server = serverFor(serverId, limits)
      const client = clientFor(clientId, serverId, limits)
      assert.equal(client.state, 'new')
      assert.throws(() => client.initiate(), InvalidArgumentError, 'no Initiate before a Cookie')

      const hello = client.hello()
      assert.equal(client.state, 'hello-sent')
      assert.equal(hello.length, 224)
      assert.deepEqual(decodeHello(hello).clientShortTermKey, client.clientShortTermKey)
      const hello2 = client.hello()
      assert.equal(client.state, 'hello-sent', 'a Hello may be sent again')
      assert.notDeepEqual(hello2.subarray(136, 144), hello.subarray(136, 144), 'with a fresh nonce')

      const cookie = server.handleHello(hello)
      assert.ok(cookie)
      assert.equal(cookie.length, 200)
      assert.equal(client.state, 'hello-sent')

      const data = Buffer.from('data carried by the Initiate ✓')
      const initiate = client.handleCookie(cookie, data)
      assert.ok(initiate)
      assert.equal(client.state, 'initiate-sent')
      const m = limits.padded ? Math.ceil((AUTH_BYTES + data.length) / 16) * 16 : AUTH_BYTES + data.length
      assert.equal(initiate.length, 544 + m, 'Initiate is 544 + M (auth extension + data, padded on UDP)')
      assert.equal(client.handleCookie(cookie), null, 'a second Cookie is ignored once past hello-sent')
      assert.throws(() => client.hello(), InvalidArgumentError, 'no Hello after the Cookie')

      const accepted = server.handleInitiate(initiate)
      assert.ok(accepted, 'the server accepts the Initiate')
      const expected = limits.padded ? Buffer.concat([data, Buffer.alloc(m - AUTH_BYTES - data.length)]) : data
      assert.deepEqual(accepted.message, expected, 'the Initiate data arrives (zero padded to 16 on UDP)')
      assert.equal(accepted.clientSignId, clientId.getSignId())
      assert.deepEqual(accepted.clientLongTermKey, boxKeyOf(clientId))
      assert.equal(accepted.serverShortTermKey.length, 32)

      const reply = Buffer.alloc(32, 0x42)
      const first = accepted.session.seal(reply)
      assert.equal(first.length, 64 + 32, 'Server Message is 64 + M')
      const est = client.handleFirstServerMessage(first)
      assert.ok(est)
      assert.equal(client.state, 'established')
      assert.deepEqual(est.message, reply)
      assert.equal(client.handleFirstServerMessage(first), null, 'established: no second first message')

      // Both ways, several messages.
      for (let i = 1; i <= 5; i++) {
        const up = Buffer.alloc(16 * i, i)
        const p = est.session.seal(up)
        assert.equal(p.length, 96 + up.length, 'Client Message is 96 + M')
        assert.deepEqual(accepted.session.open(p), up)
        const down = Buffer.alloc(16 * i, 0x80 + i)
        assert.deepEqual(est.session.open(accepted.session.seal(down)), down)
      }
      assert.equal(est.session.dropped, 0)
      assert.equal(accepted.session.dropped, 0)
      assert.equal(server.dropped, 0)
      const late = accepted.session.seal(Buffer.alloc(16))
      est.session.close()
      accepted.session.close()
      assert.equal(est.session.open(late), null, 'a closed session opens nothing')
      assert.throws(() => est.session.seal(Buffer.alloc(16)), StateError, 'nor seals')
      server.close()
    })
  }

  test("auth 'none' is plain CurveCP: no signId, the whole message is data", () => {
    const serverId = identity()
    const server = new ServerHandshake({ identity: serverId, limits: STREAM_LIMITS, auth: 'none' })
    const client = clientFor(identity(), serverId, STREAM_LIMITS, 'none')
    const accepted = server.handleInitiate(toInitiate(client, server, Buffer.from('plain')))
    assert.ok(accepted)
    assert.equal(accepted.clientSignId, undefined)
    assert.deepEqual(accepted.message, Buffer.from('plain'))
  })

  test('the hand-made client used by the attacks below is accepted when honest (so refusals are meaningful)', () => {
    const serverId = identity()
    const server = serverFor(serverId)
    for (let i = 0; i < 20; i++) {
      const me = rawIdentity()
      const ex = cookieExchange(server, serverId)
      const vouchKey = me.boxBeforeNm(ex.serverLongTermKey)
      assert.ok(vouchKey)
      const signature = me.sign(authMessage(ex.clientShortTerm.publicKey, ex.serverShortTermKey, ex.serverLongTermKey))
      const accepted = server.handleInitiate(
        craftInitiate(ex, {
          clientLongTermKey: boxKeyOf(me),
          vouchKey,
          message: Buffer.concat([authExtension(signKeyOf(me), signature), Buffer.from('hi')])
        })
      )
      assert.ok(accepted, `honest crafted Initiate ${i}`)
      assert.equal(accepted.clientSignId, me.getSignId())
      assert.deepEqual(accepted.message, Buffer.from('hi'))
    }
    assert.equal(server.dropped, 0)
  })
})

describe('minute key rotation (injected clock)', () => {
  const ROTATION = 1000

  test('a cookie from the previous period is accepted', () => {
    let now = 0
    const serverId = identity()
    const clientId = identity()
    const server = serverFor(serverId, STREAM_LIMITS, { now: () => now, minuteKeyRotationMs: ROTATION })
    for (let i = 0; i < ATTEMPTS; i++) {
      const client = clientFor(clientId, serverId)
      const initiate = toInitiate(client, server)
      now += ROTATION + 500 // the server rotates on the next packet; the cookie's key is now the previous one
      assert.ok(server.handleInitiate(initiate), `attempt ${i}`)
    }
    // Idle for just under two periods: the cookie's key is still the previous one.
    const client = clientFor(clientId, serverId)
    const initiate = toInitiate(client, server)
    now += 2 * ROTATION - 1
    assert.ok(server.handleInitiate(initiate))
    assert.equal(server.dropped, 0)
  })

  test('a cookie from two periods ago is refused (after a rotation in between, and after idling two periods)', () => {
    let now = 0
    const serverId = identity()
    const clientId = identity()
    const server = serverFor(serverId, STREAM_LIMITS, { now: () => now, minuteKeyRotationMs: ROTATION })
    for (let i = 0; i < ATTEMPTS; i++) {
      const client = clientFor(clientId, serverId)
      const initiate = toInitiate(client, server)
      if (i % 2 === 0) {
        now += ROTATION
        assert.ok(server.handleHello(clientFor(clientId, serverId).hello()), 'another Hello rotates the key once')
        now += ROTATION
      } else {
        now += 2 * ROTATION // nothing in between
      }
      assert.equal(server.handleInitiate(initiate), null, `attempt ${i}`)
      assert.equal(client.state, 'initiate-sent')
    }
    assert.equal(server.drops['bad-cookie'], ATTEMPTS)
    assert.equal(server.dropped, ATTEMPTS)
  })

  test('a replayed Initiate stays refused after a rotation (the previous period remembers its cookies)', () => {
    let now = 0
    const serverId = identity()
    const server = serverFor(serverId, STREAM_LIMITS, { now: () => now, minuteKeyRotationMs: ROTATION })
    const initiate = toInitiate(clientFor(identity(), serverId), server)
    assert.ok(server.handleInitiate(initiate))
    now += ROTATION + 1
    assert.ok(server.handleHello(clientFor(identity(), serverId).hello()))
    for (let i = 0; i < ATTEMPTS; i++) assert.equal(server.handleInitiate(initiate), null)
    assert.equal(server.drops['replayed-cookie'], ATTEMPTS)
  })
})

describe('the used-cookie cache is bounded (maxRememberedCookies, injected clock)', () => {
  const ROTATION = 1000
  const LIMIT = 4

  test('past the bound a fresh Initiate is dropped as cookie-cache-full; a replay is still a replay; the next minute key starts a new cache', () => {
    let now = 0
    const serverId = identity()
    const server = serverFor(serverId, STREAM_LIMITS, { now: () => now, minuteKeyRotationMs: ROTATION, maxRememberedCookies: LIMIT })
    const accepted: Buffer[] = []
    for (let i = 0; i < LIMIT; i++) {
      const initiate = toInitiate(clientFor(identity(), serverId), server)
      assert.ok(server.handleInitiate(initiate), `Initiate ${i} within the bound`)
      accepted.push(initiate)
    }
    // Full: a valid Initiate with a fresh cookie is refused, and nothing is remembered for it.
    const late = toInitiate(clientFor(identity(), serverId), server)
    assert.equal(server.handleInitiate(late), null)
    assert.equal(server.drops['cookie-cache-full'], 1)
    assert.equal(server.handleInitiate(late), null, 'still full')
    assert.equal(server.drops['cookie-cache-full'], 2)
    assert.equal(server.drops['replayed-cookie'], 0, 'a refused cookie was not recorded as used')
    // The used cookies are all still known: a replay is refused as a replay, not let through.
    assert.equal(server.handleInitiate(accepted[0] as Buffer), null)
    assert.equal(server.drops['replayed-cookie'], 1)
    // Next period: cookies under the new minute key go to a new, empty cache.
    now += ROTATION
    const next = toInitiate(clientFor(identity(), serverId), server)
    assert.ok(server.handleInitiate(next), 'a cookie under the new key is taken')
    // The full cache is now the previous period's: its cookies are still refused, for either reason.
    assert.equal(server.handleInitiate(late), null)
    assert.equal(server.drops['cookie-cache-full'], 3)
    assert.equal(server.handleInitiate(accepted[1] as Buffer), null)
    assert.equal(server.drops['replayed-cookie'], 2)
    assert.equal(server.dropped, 5)
  })
})

describe('local misuse and secret hygiene', () => {
  test('UDP: Session.seal refuses a message the peer would drop (not a positive multiple of 16)', () => {
    const serverId = identity()
    const { clientSession, serverSession } = establish(clientFor(identity(), serverId, UDP_LIMITS), serverFor(serverId, UDP_LIMITS))
    for (const n of [0, 1, 5, 15, 17, 1000]) {
      assert.throws(() => clientSession.seal(Buffer.alloc(n)), InvalidArgumentError, `client, ${n} bytes`)
      assert.throws(() => serverSession.seal(Buffer.alloc(n)), InvalidArgumentError, `server, ${n} bytes`)
    }
    assert.throws(() => clientSession.seal(Buffer.alloc(1104)), InvalidArgumentError, 'over 1088')
    const p = clientSession.seal(Buffer.alloc(1088, 1))
    assert.deepEqual(serverSession.open(p), Buffer.alloc(1088, 1), 'the refusals did not use up counters the peer needs')
    assert.equal(serverSession.dropped, 0)
  })

  test('stream: Session.seal takes any length up to the limit, including 0 (keepalive)', () => {
    const serverId = identity()
    const { clientSession, serverSession } = establish(clientFor(identity(), serverId), serverFor(serverId))
    for (const n of [0, 1, 17, 65_536, STREAM_MAX_MESSAGE_BYTES]) assert.deepEqual(serverSession.open(clientSession.seal(Buffer.alloc(n, 7))), Buffer.alloc(n, 7))
    assert.throws(() => clientSession.seal(Buffer.alloc(STREAM_MAX_MESSAGE_BYTES + 1)), InvalidArgumentError)
  })

  test('a minute key that rotates out is zeroed, also after an idle of two periods', () => {
    let now = 0
    const serverId = identity()
    const server = serverFor(serverId, STREAM_LIMITS, { now: () => now, minuteKeyRotationMs: 1000 })
    const keys = (server as unknown as { minuteKeys: { key: Buffer; previousKey: Buffer | undefined } }).minuteKeys
    const hello = (): void => void server.handleHello(clientFor(identity(), serverId).hello())
    const first = keys.key
    now = 1000
    hello()
    assert.equal(keys.previousKey, first, 'one rotation: the old key is kept as the previous one')
    assert.notDeepEqual(first, Buffer.alloc(32))
    now = 2000
    hello()
    assert.deepEqual(first, Buffer.alloc(32), 'two rotations: zeroed')
    const current = keys.key
    const previous = keys.previousKey
    assert.ok(previous)
    now = 10_000 // idle for many periods
    hello()
    assert.deepEqual(previous, Buffer.alloc(32), 'idle: the previous key is zeroed')
    assert.deepEqual(current, Buffer.alloc(32), 'idle: the current key is zeroed too')
    assert.equal(keys.previousKey, undefined)
  })

  test('the minute key rotates on a timer while no packet arrives, and close() stops the timer', async () => {
    const server = serverFor(identity(), STREAM_LIMITS, { minuteKeyRotationMs: 25 })
    const keys = (server as unknown as { minuteKeys: { key: Buffer } }).minuteKeys
    const first = keys.key
    await delay(150)
    const n = server.minuteKeyRotations
    assert.ok(n >= 2, `rotations of an idle server in 150 ms at 25 ms: ${n}`)
    assert.deepEqual(first, Buffer.alloc(32), 'the first key, two periods old, is zeroed without any packet')
    server.close()
    await delay(100)
    assert.equal(server.minuteKeyRotations, n, 'no rotation after close()')
  })
})

describe('refusals, each 100% over 200 attempts', () => {
  test('a forged Initiate riding a valid cookie uses the cookie up before any public-key work', () => {
    for (let i = 0; i < ATTEMPTS; i++) {
      const serverId = identity()
      const server = serverFor(serverId)
      const initiate = toInitiate(clientFor(identity(), serverId), server)
      const forged = Buffer.from(initiate)
      forged[forged.length - 1]! ^= 1 // the box no longer opens; the cookie is still valid
      assert.equal(server.handleInitiate(forged), null)
      assert.equal(server.drops['bad-initiate'], 1, 'the forgery is refused at the box')
      // The cookie was marked used before the X25519 work: the same cookie is now refused at the
      // replay check (one secretbox), even carrying the genuine box.
      assert.equal(server.handleInitiate(forged), null)
      assert.equal(server.handleInitiate(initiate), null)
      assert.equal(server.drops['replayed-cookie'], 2, 'every later Initiate with that cookie stops at the replay check')
      assert.equal(server.drops['bad-initiate'], 1, 'no second attempt at the box')
    }
  })

  test('a replayed Initiate (same cookie) is refused, also when re-sent with a fresh nonce', () => {
    const serverId = identity()
    const server = serverFor(serverId)
    const client = clientFor(identity(), serverId)
    const initiate = toInitiate(client, server, Buffer.from('once'))
    const accepted = server.handleInitiate(initiate)
    assert.ok(accepted)
    for (let i = 0; i < ATTEMPTS; i++) {
      assert.equal(server.handleInitiate(initiate), null, `exact replay ${i}`)
      assert.equal(server.handleInitiate(client.initiate(Buffer.from('again'))), null, `re-encrypted ${i}`)
    }
    assert.equal(server.drops['replayed-cookie'], 2 * ATTEMPTS)
    assert.equal(server.dropped, 2 * ATTEMPTS)
  })

  test('a cookie moved to another client short-term key is refused', () => {
    const serverId = identity()
    const server = serverFor(serverId)
    const me = rawIdentity()
    for (let i = 0; i < ATTEMPTS; i++) {
      const victimEx = cookieExchange(server, serverId)
      const ex = cookieExchange(server, serverId)
      const stolen = { ...ex, cookie: victimEx.cookie } // our C', the victim's cookie
      const vouchKey = me.boxBeforeNm(ex.serverLongTermKey)
      assert.ok(vouchKey)
      const sig = me.sign(authMessage(ex.clientShortTerm.publicKey, ex.serverShortTermKey, ex.serverLongTermKey))
      assert.equal(server.handleInitiate(craftInitiate(stolen, { clientLongTermKey: boxKeyOf(me), vouchKey, message: authExtension(signKeyOf(me), sig) })), null)
    }
    assert.equal(server.drops['bad-cookie'], ATTEMPTS)
  })

  for (const [name, limits] of [['UDP', UDP_LIMITS], ['stream', STREAM_LIMITS]] as const) {
    test(`${name}: replayed, reordered, tampered and misaddressed Messages are refused by Session.open, counted in drops`, () => {
      const serverId = identity()
      const { clientSession, serverSession } = establish(clientFor(identity(), serverId, limits), serverFor(serverId, limits))
      const msg = (i: number): Buffer => Buffer.alloc(16 + (i % 4) * 16, i & 0xff)
      for (const [sender, receiver, boxOffset] of [
        [clientSession, serverSession, 80],
        [serverSession, clientSession, 48]
      ] as const) {
        const before = { ...receiver.drops }
        for (let i = 0; i < ATTEMPTS; i++) {
          // replay
          const p = sender.seal(msg(i))
          assert.deepEqual(receiver.open(p), msg(i))
          assert.equal(receiver.open(p), null, `replay ${i}`)
          // reorder: b arrives before a; a is then refused
          const a = sender.seal(msg(i + 1))
          const b = sender.seal(msg(i + 2))
          assert.deepEqual(receiver.open(b), msg(i + 2))
          assert.equal(receiver.open(a), null, `reordered ${i}`)
          // tamper: one bit of the box; the untampered packet still opens after
          const c = sender.seal(msg(i + 3))
          const t = Buffer.from(c)
          const at = boxOffset + (i % (t.length - boxOffset))
          t[at]! ^= 1 << (i % 8)
          assert.equal(receiver.open(t), null, `tampered ${i}`)
          assert.deepEqual(receiver.open(c), msg(i + 3), 'the forgery did not burn the counter')
        }
        assert.equal(receiver.drops.replayed - before.replayed, 2 * ATTEMPTS)
        assert.equal(receiver.drops.forged - before.forged, ATTEMPTS)
      }
      // A Client Message under another client short-term key.
      for (let i = 0; i < ATTEMPTS; i++) {
        const p = clientSession.seal(msg(i))
        boxKeyPair().publicKey.copy(p, 40)
        assert.equal(serverSession.open(p), null)
      }
      assert.equal(serverSession.drops['wrong-key'], ATTEMPTS)
      // Malformed: wrong kind of packet, truncated.
      for (let i = 0; i < ATTEMPTS; i++) {
        assert.equal(serverSession.open(serverSession.seal(msg(i))), null, 'a Server Message sent to the server')
        assert.equal(clientSession.open(clientSession.seal(msg(i)).subarray(0, 60)), null, 'truncated')
      }
      assert.equal(serverSession.drops.malformed, ATTEMPTS)
      assert.equal(clientSession.drops.malformed, ATTEMPTS)
    })
  }

  test('a Hello for another server key is refused', () => {
    const serverId = identity()
    const otherId = identity()
    const server = serverFor(serverId)
    for (let i = 0; i < ATTEMPTS; i++) {
      const client = clientFor(identity(), otherId)
      assert.equal(server.handleHello(client.hello()), null)
    }
    assert.equal(server.drops['bad-hello'], ATTEMPTS)
    assert.equal(server.dropped, ATTEMPTS)
  })

  test('a Hello or Initiate for another server extension is refused', () => {
    const serverId = identity()
    const server = serverFor(serverId, STREAM_LIMITS, { serverExtension: Buffer.alloc(16, 1) })
    for (let i = 0; i < ATTEMPTS; i++) {
      const client = new ClientHandshake({ identity: identity(), serverLongTermKey: boxKeyOf(serverId), limits: STREAM_LIMITS, auth: 'signid', serverExtension: Buffer.alloc(16, 2) })
      assert.equal(server.handleHello(client.hello()), null)
      // An Initiate made for this server, its server extension then changed.
      const good = new ClientHandshake({ identity: identity(), serverLongTermKey: boxKeyOf(serverId), limits: STREAM_LIMITS, auth: 'signid', serverExtension: Buffer.alloc(16, 1) })
      const initiate = toInitiate(good, server)
      initiate.fill(2, 8, 24)
      assert.equal(server.handleInitiate(initiate), null)
    }
    assert.equal(server.drops['wrong-extension'], 2 * ATTEMPTS)
    assert.equal(server.dropped, 2 * ATTEMPTS)
  })

  test('an Initiate whose vouch is for another client short-term key, or made by another long-term key, is refused', () => {
    const serverId = identity()
    const server = serverFor(serverId)
    const attacker = rawIdentity()
    const victim = rawIdentity()
    for (let i = 0; i < ATTEMPTS; i++) {
      const ex = cookieExchange(server, serverId)
      const vouchKey = attacker.boxBeforeNm(ex.serverLongTermKey)
      assert.ok(vouchKey)
      const sig = attacker.sign(authMessage(ex.clientShortTerm.publicKey, ex.serverShortTermKey, ex.serverLongTermKey))
      const auth = authExtension(signKeyOf(attacker), sig)
      // 1. The vouch names another C'.
      assert.equal(server.handleInitiate(craftInitiate(ex, { clientLongTermKey: boxKeyOf(attacker), vouchKey, vouchedKey: boxKeyPair().publicKey, message: auth })), null)
      // 2. Claims the victim's long-term key C, vouch made with the attacker's key.
      const ex2 = cookieExchange(server, serverId)
      const vouchKey2 = attacker.boxBeforeNm(ex2.serverLongTermKey)
      assert.ok(vouchKey2)
      const victimAuth = authExtension(signKeyOf(victim), victim.sign(authMessage(ex.clientShortTerm.publicKey, ex.serverShortTermKey, ex.serverLongTermKey)))
      assert.equal(server.handleInitiate(craftInitiate(ex2, { clientLongTermKey: boxKeyOf(victim), vouchKey: vouchKey2, message: victimAuth })), null)
    }
    assert.equal(server.drops['bad-vouch'], 2 * ATTEMPTS)
    assert.equal(server.dropped, 2 * ATTEMPTS)
  })

  test("spoofed signId: another node's signId in the auth extension is refused with drops['bad-auth']", () => {
    const serverId = identity()
    const otherServerId = identity()
    const server = serverFor(serverId)
    const attacker = rawIdentity()
    const victim = rawIdentity()
    const variants = [
      'victim signId, signature by the attacker over this session',
      "victim signId, the victim's genuine signature over another session",
      "victim signId, the victim's genuine signature over this session's keys but another server",
      "attacker signId, the victim's signature over this session",
      "attacker signId, the attacker's own signature over another session (replayed auth)",
      "attacker signId, the attacker's own signature over this session's keys but another server",
      "attacker signId with its sign bit flipped (same ed2curve, another signId), the attacker's signature",
      'attacker signId, valid signature, wrong auth version',
      'auth extension cut short',
      'no auth extension'
    ]
    for (let i = 0; i < ATTEMPTS; i++) {
      for (const [v, what] of variants.entries()) {
        const ex = cookieExchange(server, serverId)
        const vouchKey = attacker.boxBeforeNm(ex.serverLongTermKey)
        assert.ok(vouchKey)
        const here = authMessage(ex.clientShortTerm.publicKey, ex.serverShortTermKey, ex.serverLongTermKey)
        const elsewhere = authMessage(boxKeyPair().publicKey, boxKeyPair().publicKey, ex.serverLongTermKey)
        const otherServer = authMessage(ex.clientShortTerm.publicKey, ex.serverShortTermKey, boxKeyOf(otherServerId))
        const auth = [
          authExtension(signKeyOf(victim), attacker.sign(here)),
          authExtension(signKeyOf(victim), victim.sign(elsewhere)),
          authExtension(signKeyOf(victim), victim.sign(otherServer)),
          authExtension(signKeyOf(attacker), victim.sign(here)),
          authExtension(signKeyOf(attacker), attacker.sign(elsewhere)),
          authExtension(signKeyOf(attacker), attacker.sign(otherServer)),
          authExtension(flipSignBit(signKeyOf(attacker)), attacker.sign(here)),
          authExtension(signKeyOf(attacker), attacker.sign(here), AUTH_VERSION + 1),
          authExtension(signKeyOf(attacker), attacker.sign(here)).subarray(0, AUTH_BYTES - 1),
          Buffer.alloc(0)
        ][v] as Buffer
        const initiate = craftInitiate(ex, { clientLongTermKey: boxKeyOf(attacker), vouchKey, message: Buffer.concat([auth, Buffer.from('payload')]) })
        if (v === 6 && i === 0) {
          // The flipped key really is another signId with the same box key: only the signature stops it.
          assert.deepEqual(signPublicToBoxPublic(flipSignBit(signKeyOf(attacker))), boxKeyOf(attacker))
        }
        assert.equal(server.handleInitiate(initiate), null, `${what} (attempt ${i})`)
      }
    }
    assert.equal(server.drops['bad-auth'], ATTEMPTS * variants.length)
    assert.equal(server.dropped, ATTEMPTS * variants.length, 'refused for the auth, not for anything else')
  })

  test('a client identity whose boxId is not ed2curve(signId) is refused (custom IdentityLike)', () => {
    const serverId = identity()
    const server = serverFor(serverId)
    const victim = identity()
    for (let i = 0; i < ATTEMPTS; i++) {
      const signing = signKeyPair()
      const boxing = boxKeyPair()
      assert.notDeepEqual(signPublicToBoxPublic(signing.publicKey), boxing.publicKey)
      // Its own sign key and an unrelated box key; or the victim's signId over its own box key.
      const claimsVictim = i % 2 === 1
      const odd: IdentityLike = {
        getSignId: () => (claimsVictim ? victim.getSignId() : signing.publicKey.toString('base64')),
        getBoxId: () => boxing.publicKey.toString('base64'),
        sign: (m) => sign(m, signing.secretKey),
        boxBeforeNm: (their) => boxBeforeNm(their, boxing.secretKey)
      }
      const client = clientFor(odd, serverId)
      assert.equal(server.handleInitiate(toInitiate(client, server, Buffer.from('x'))), null, `attempt ${i}`)
    }
    assert.equal(server.drops['bad-auth'], ATTEMPTS)
    assert.equal(server.dropped, ATTEMPTS)
  })

  test("the client refuses a Cookie not made with the expected server key (man in the middle answering with its own key)", () => {
    const serverId = identity()
    const server = serverFor(serverId)
    const mitmId = identity()
    const mitmServer = serverFor(mitmId)
    const mitm = boxKeyPair()
    for (let i = 0; i < ATTEMPTS; i++) {
      const client = clientFor(identity(), serverId)
      const hello = client.hello()
      // The MITM cannot open the Hello (it is boxed to S), but knows C' from it and boxes a Cookie to C' with its own key.
      assert.equal(mitmServer.handleHello(hello), null)
      const h = decodeHello(hello)
      const k = boxBeforeNm(h.clientShortTermKey, mitm.secretKey)
      assert.ok(k)
      const nonce = randomBytes(16)
      const forged = encodeCookie({
        clientExtension: h.clientExtension,
        serverExtension: h.serverExtension,
        nonce,
        box: secretbox(encodeCookieInner({ serverShortTermKey: boxKeyPair().publicKey, cookie: randomBytes(96) }), longTermNonce(NONCE_COOKIE, nonce), k)
      })
      assert.equal(client.handleCookie(forged), null, `forged cookie ${i}`)
      // A genuine Cookie from another real server, for another client's Hello.
      const other = mitmServer.handleHello(clientFor(identity(), mitmId).hello())
      assert.ok(other)
      assert.equal(client.handleCookie(other), null, `foreign cookie ${i}`)
      assert.equal(client.state, 'hello-sent')
      // The real server's answer still works afterwards.
      const real = server.handleHello(hello)
      assert.ok(real)
      assert.ok(client.handleCookie(real), `real cookie after the forgeries ${i}`)
      assert.equal(client.state, 'initiate-sent')
    }
  })

  test('the client refuses a first Server Message not from the session key', () => {
    const serverId = identity()
    const server = serverFor(serverId)
    for (let i = 0; i < ATTEMPTS; i++) {
      const client = clientFor(identity(), serverId)
      const accepted = server.handleInitiate(toInitiate(client, server))
      assert.ok(accepted)
      // A Server Message from some other session.
      const { serverSession } = establish(clientFor(identity(), serverId), server)
      assert.equal(client.handleFirstServerMessage(serverSession.seal(Buffer.alloc(16))), null)
      assert.equal(client.state, 'initiate-sent')
      assert.ok(client.handleFirstServerMessage(accepted.session.seal(Buffer.alloc(16))))
    }
    assert.equal(sum(server.drops), 0)
  })
})
