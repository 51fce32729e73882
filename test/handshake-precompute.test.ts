/**
 * Handshake work done ahead or remembered (client-handshake.ts, server-handshake.ts): short-term
 * key pairs are made between turns and each serves one handshake only; the server remembers the
 * S' of its recent Cookies (bounded) so that an Initiate need not compute it, and an Initiate whose
 * S' was forgotten (a Hello flood) still completes, computing it. The server makes the session key
 * of a turn's last Cookie after the turn: used once, bounded, forgotten when the minute key rotates.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Identity } from '../src/identity/identity.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import { STREAM_LIMITS } from '../src/curvecp/packets.js'
import { ClientHandshake, ServerHandshake } from '../src/curvecp/handshake.js'
import { MAX_CACHED_SHORT_TERM_KEYS, MAX_PRECOMPUTED_SESSION_KEYS } from '../src/curvecp/server-handshake.js'
import { spareReady } from '../src/curvecp/client-handshake.js'

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

function identity(): Identity {
  return new Identity(new PlatformStorage(new MemoryStore()))
}

/**
 * A server handshake and a client identity; `complete` finishes a client's handshake from its
 * Cookie and checks that both ends hold the same session (each opens what the other sealed).
 */
function handshakePair(t: TestContext, options: { now?: () => number; minuteKeyRotationMs?: number } = {}) {
  const serverId = identity()
  const server = new ServerHandshake({ identity: serverId, limits: STREAM_LIMITS, auth: 'signid', ...options })
  t.after(() => server.close())
  const serverKey = Buffer.from(serverId.getBoxId(), 'base64')
  const clientId = identity()
  const start = (): ClientHandshake => new ClientHandshake({ identity: clientId, serverLongTermKey: serverKey, limits: STREAM_LIMITS, auth: 'signid' })
  const complete = (c: ClientHandshake, cookie: Buffer | null): Buffer => {
    assert.ok(cookie)
    const initiate = c.handleCookie(cookie, Buffer.from('hi'))
    assert.ok(initiate)
    const accepted = server.handleInitiate(initiate)
    assert.ok(accepted, `refused: ${JSON.stringify(server.drops)}`)
    assert.equal(accepted.clientSignId, clientId.getSignId())
    assert.deepEqual(accepted.message, Buffer.from('hi'))
    // The client signed the S' its Cookie carried; the server checked it against its own S'.
    const first = c.handleFirstServerMessage(accepted.session.seal(Buffer.from('ok')))
    assert.deepEqual(first?.message, Buffer.from('ok'))
    assert.deepEqual(accepted.session.open(first!.session.seal(Buffer.from('more'))), Buffer.from('more'))
    return initiate
  }
  return { server, start, complete }
}

test('short-term key pairs made ahead serve one handshake each', async () => {
  const server = identity()
  const client = identity()
  const serverKey = Buffer.from(server.getBoxId(), 'base64')
  const seen = new Set<string>()
  for (let i = 0; i < 20; i++) {
    // Two in one turn (the second finds no spare), then a turn for the spare to be made.
    for (let j = 0; j < 2; j++) {
      const c = new ClientHandshake({ identity: client, serverLongTermKey: serverKey, limits: STREAM_LIMITS, auth: 'signid' })
      const key = c.clientShortTermKey.toString('hex')
      assert.ok(!seen.has(key), `C' ${key} was used twice`)
      seen.add(key)
    }
    await turn()
  }
})

test("the client's next key pair is made after its Initiate, not after its Hello (a TCP Hello waits for the connect event)", async (t) => {
  const serverId = identity()
  const server = new ServerHandshake({ identity: serverId, limits: STREAM_LIMITS, auth: 'signid' })
  t.after(() => server.close())
  const serverKey = Buffer.from(serverId.getBoxId(), 'base64')
  const clientId = identity()
  for (let i = 0; i < 3; i++) {
    const c = new ClientHandshake({ identity: clientId, serverLongTermKey: serverKey, limits: STREAM_LIMITS, auth: 'signid' })
    const cookie = server.handleHello(c.hello())
    assert.ok(cookie)
    await turn()
    assert.equal(spareReady(), false, 'nothing made in the turn after the Hello')
    assert.ok(c.handleCookie(cookie))
    await turn()
    assert.equal(spareReady(), true, 'made in the turn after the Initiate')
  }
})

test('the server completes Initiates with its remembered S and, after a Hello flood forgot them, with a computed one', async (t) => {
  const { server, start, complete } = handshakePair(t)

  // S' remembered: the Initiate uses it, and the entry goes with it.
  for (let i = 0; i < 5; i++) {
    const c = start()
    const cookie = server.handleHello(c.hello())
    assert.equal(server.cachedShortTermKeys, 1)
    complete(c, cookie)
    assert.equal(server.cachedShortTermKeys, 0)
    await turn()
  }

  // An early client, then more Hellos than are remembered: its S' is forgotten, the bound holds.
  const early = start()
  const earlyCookie = server.handleHello(early.hello())
  for (let i = 0; i < MAX_CACHED_SHORT_TERM_KEYS + 20; i++) {
    assert.ok(server.handleHello(start().hello()))
    assert.ok(server.cachedShortTermKeys <= MAX_CACHED_SHORT_TERM_KEYS)
  }
  assert.equal(server.cachedShortTermKeys, MAX_CACHED_SHORT_TERM_KEYS)
  complete(early, earlyCookie)
  assert.equal(server.cachedShortTermKeys, MAX_CACHED_SHORT_TERM_KEYS)
  assert.equal(server.dropped, 0)
  server.close()
  assert.equal(server.cachedShortTermKeys, 0, 'close() forgets them')
})

test("a Hello key made ahead for the server a node reconnects to is used for that server only", async (t) => {
  const servers = [identity(), identity()].map((id) => {
    const hs = new ServerHandshake({ identity: id, limits: STREAM_LIMITS, auth: 'signid' })
    t.after(() => hs.close())
    return { hs, key: Buffer.from(id.getBoxId(), 'base64') }
  })
  const client = identity()
  // Reconnects to server 0 (the Hello key is then made ahead), a switch to server 1 and back.
  const order = [0, 0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0]
  for (const i of order) {
    const { hs, key } = servers[i]!
    const c = new ClientHandshake({ identity: client, serverLongTermKey: key, limits: STREAM_LIMITS, auth: 'signid' })
    const cookie = hs.handleHello(c.hello())
    assert.ok(cookie, `server ${i} refused the Hello: ${JSON.stringify(hs.drops)}`)
    const initiate = c.handleCookie(cookie)
    assert.ok(initiate, 'the Cookie opens with the Hello key')
    assert.ok(hs.handleInitiate(initiate), `server ${i} refused the Initiate`)
    await turn()
  }
  assert.equal(servers[0]!.hs.dropped + servers[1]!.hs.dropped, 0)
})

test('the session key made after a Cookie serves its Initiate once; one per turn, bounded, forgotten on rotation', async (t) => {
  let clock = 1_000_000
  const { server, start, complete } = handshakePair(t, { now: () => clock, minuteKeyRotationMs: 60_000 })

  // A Hello, a turn (the key is made), the Initiate takes it; a replay of it is still refused.
  const c = start()
  const cookie = server.handleHello(c.hello())
  await turn()
  assert.equal(server.precomputedSessionKeys, 1, 'made after the turn')
  const initiate = complete(c, cookie)
  assert.equal(server.precomputedSessionKeys, 0, 'taken by its Initiate')
  assert.equal(server.handleInitiate(initiate), null)
  assert.equal(server.drops['replayed-cookie'], 1)

  // Five Hellos in one turn: only the last one's key is made; all five complete.
  const clients = Array.from({ length: 5 }, () => start())
  const cookies = clients.map((x) => server.handleHello(x.hello()))
  await turn()
  assert.equal(server.precomputedSessionKeys, 1, 'one per turn')
  clients.forEach((x, i) => complete(x, cookies[i]!))
  assert.equal(server.precomputedSessionKeys, 0)

  // Hellos whose Initiates never come, one per turn: the bound holds.
  for (let i = 0; i < MAX_PRECOMPUTED_SESSION_KEYS + 5; i++) {
    assert.ok(server.handleHello(start().hello()))
    await turn()
  }
  assert.equal(server.precomputedSessionKeys, MAX_PRECOMPUTED_SESSION_KEYS)

  // The minute key rotates (on the next packet): every key made ahead is forgotten.
  const late = start()
  const lateCookie = server.handleHello(late.hello())
  await turn()
  clock += 60_000
  assert.ok(server.handleHello(start().hello()))
  assert.equal(server.precomputedSessionKeys, 1, "only the new Hello's, still to be made")
  complete(late, lateCookie) // a cookie of the previous minute key: completes, computing its key
  server.close()
  assert.equal(server.precomputedSessionKeys, 0, 'close() forgets them')
})
