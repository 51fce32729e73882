/**
 * 64-bit nonce counters (curvecp.org/nonces.html): a peer may start anywhere below 2^64 (DJB's
 * curvecpserver starts a freed client slot at a random 64-bit nonce), so counters at and above
 * 2^53 must be read, compared and accepted exactly; the last counter, 2^64-1, ends the session.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from '../src/crypto/sodium.js'
import { STREAM_LIMITS } from '../src/curvecp/packets.js'
import { Session } from '../src/curvecp/session.js'
import { compareCounters, counter64, counterToBigInt, readCounter, shortTermNonce, type Counter64 } from '../src/curvecp/nonces.js'
import { NONCE_SERVER_MESSAGE } from '../src/curvecp/constants.js'
import { StateError } from '../src/errors.js'

const TWO_53 = 2n ** 53n
const MAX = 2n ** 64n - 1n

/** A client/server pair of sessions on one key; the server starts sending at `serverStart`. */
function pair(serverStart: bigint, clientLastSeen: bigint = 0n): { client: Session; server: Session } {
  const key = randomBytes(32)
  const common = { clientShortTermKey: randomBytes(32), clientExtension: Buffer.alloc(16), serverExtension: Buffer.alloc(16), limits: STREAM_LIMITS }
  const server = new Session({ ...common, role: 'server', sharedKey: Buffer.from(key), nextSendCounter: counter64(serverStart), lastReceivedCounter: 0 })
  const client = new Session({ ...common, role: 'client', sharedKey: Buffer.from(key), nextSendCounter: 1, lastReceivedCounter: counter64(clientLastSeen) })
  return { client, server }
}

/** The counter a Server Message packet carries (bytes 40..48). */
function counterOf(packet: Buffer): bigint {
  return counterToBigInt(readCounter(packet, 40))
}

test('counters round-trip through the nonce bytes, all 64 bits', () => {
  for (const v of [0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, TWO_53 - 1n, TWO_53, TWO_53 + 1n, 0x8000_0000_0000_0000n, MAX]) {
    const nonce = shortTermNonce(NONCE_SERVER_MESSAGE, counter64(v))
    assert.equal(counterToBigInt(readCounter(nonce, 16)), v)
  }
  const a: Counter64 = counter64(TWO_53)
  const b: Counter64 = counter64(TWO_53 + 1n)
  assert.equal(compareCounters(a, b), -1)
  assert.equal(compareCounters(b, a), 1)
  assert.equal(compareCounters(a, counter64(TWO_53)), 0)
})

test('a peer counting from above 2^53 is accepted packet after packet, and replays are still refused', () => {
  for (const start of [TWO_53 - 2n, TWO_53, TWO_53 + 12345n, 0xdead_beef_0000_0000n, MAX - 5n]) {
    const { client, server } = pair(start)
    const packets: Buffer[] = []
    for (let i = 0; i < 5; i++) packets.push(server.seal(Buffer.from(`m${i}`)))
    assert.deepEqual(packets.map(counterOf), [0n, 1n, 2n, 3n, 4n].map((i) => start + i), 'exact counters on the wire')
    for (let i = 0; i < 5; i++) assert.equal(client.open(packets[i]!)?.toString(), `m${i}`, `packet ${i} from ${start}`)
    assert.equal(client.open(packets[4]!), null, 'a replay of the last one is refused')
    assert.equal(client.open(packets[0]!), null, 'an older one is refused')
    assert.equal(client.drops.replayed, 2)
  }
})

test('a counter just above the last one seen is fresh even where doubles cannot tell them apart', () => {
  // 2^60 and 2^60 + 1 are the same double: only an exact comparison accepts the second.
  const start = 2n ** 60n
  const { client, server } = pair(start, start - 1n)
  const first = server.seal(Buffer.from('a'))
  const second = server.seal(Buffer.from('b'))
  assert.equal(client.open(first)?.toString(), 'a')
  assert.equal(client.open(second)?.toString(), 'b')
})

test('the last counter, 2^64-1, is used once; the next seal closes the session', () => {
  const { client, server } = pair(MAX - 1n)
  const a = server.seal(Buffer.from('a'))
  const b = server.seal(Buffer.from('b'))
  assert.equal(counterOf(b), MAX)
  assert.throws(() => server.seal(Buffer.from('c')), (err: unknown) => err instanceof StateError && err.code === 'ERR_CLOSED')
  assert.throws(() => server.seal(Buffer.from('d')), 'still closed')
  assert.equal(client.open(a)?.toString(), 'a')
  assert.equal(client.open(b)?.toString(), 'b')
  // Nothing can be fresher than 2^64-1: the receiving session closes too.
  assert.equal(client.open(b), null)
  assert.throws(() => client.seal(Buffer.from('x')), 'the receiving side closed itself at the last counter')
})
