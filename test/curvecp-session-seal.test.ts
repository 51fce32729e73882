/**
 * The TCP hot path's ways of sealing and opening: a packet sealed from parts, or with room for the
 * length prefix, is the packet seal() makes of the same bytes; an in-place open gives the message
 * as a view into the packet and refuses tampered and replayed packets as open() does.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from '../src/crypto/sodium.js'
import { STREAM_LIMITS } from '../src/curvecp/packets.js'
import { Session } from '../src/curvecp/session.js'

/** Twin senders (same key and counter: the same nonces) and their receiver. */
function sessions(): { a: Session; b: Session; receiver: Session } {
  const key = randomBytes(32)
  const common = { clientShortTermKey: randomBytes(32), clientExtension: Buffer.alloc(16), serverExtension: Buffer.alloc(16), limits: STREAM_LIMITS }
  const a = new Session({ ...common, role: 'server', sharedKey: Buffer.from(key), nextSendCounter: 5, lastReceivedCounter: 0 })
  const b = new Session({ ...common, role: 'server', sharedKey: Buffer.from(key), nextSendCounter: 5, lastReceivedCounter: 0 })
  const receiver = new Session({ ...common, role: 'client', sharedKey: Buffer.from(key), nextSendCounter: 1, lastReceivedCounter: 0 })
  return { a, b, receiver }
}

test('sealParts(parts) is seal(concat(parts)); headroom only adds room before the same packet', () => {
  const { a, b } = sessions()
  const parts = [randomBytes(5), randomBytes(1024), randomBytes(1), randomBytes(300)]
  const whole = Buffer.concat(parts)
  const plain = a.seal(whole)
  const fromParts = b.sealParts(parts, whole.length, 4)
  assert.equal(fromParts.length, plain.length + 4)
  assert.deepEqual(fromParts.subarray(4), plain)
  assert.deepEqual(Buffer.concat(parts), whole, 'the parts are not touched')
  const next = a.seal(whole)
  assert.deepEqual(b.seal(whole, 4).subarray(4), next)
  assert.throws(() => b.sealParts(parts, whole.length + 1), /parts hold/)
})

test('an in-place open returns the message as a view into the packet; tampered and replayed packets are refused', () => {
  const { a, receiver } = sessions()
  const message = randomBytes(2000)
  const p1 = a.seal(message)
  const p2 = a.seal(message)
  const p3 = a.seal(message)
  const replay = Buffer.from(p1)
  const opened = receiver.open(p1, true)
  assert.ok(opened)
  assert.deepEqual(opened, message)
  assert.equal(opened.buffer, p1.buffer, 'decrypted where the ciphertext was')
  assert.equal(receiver.open(replay, true), null, 'a replayed packet is refused')
  assert.equal(receiver.drops.replayed, 1)
  const tampered = Buffer.from(p2)
  tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1
  assert.equal(receiver.open(tampered, true), null, 'a tampered packet does not open')
  assert.equal(receiver.drops.forged, 1)
  assert.deepEqual(receiver.open(p2, true), message, 'the untampered one still opens: the failed open changed no state')
  assert.deepEqual(receiver.open(p3), message, 'open() without inPlace still copies out')
})

test('sameBytes compares lengths and every byte', async () => {
  const { sameBytes } = await import('../src/curvecp/same-bytes.js')
  const a = randomBytes(32)
  assert.equal(sameBytes(a, Buffer.from(a)), true)
  assert.equal(sameBytes(a, a.subarray(0, 31)), false)
  assert.equal(sameBytes(new Uint8Array(0), Buffer.alloc(0)), true)
  for (const at of [0, 15, 31]) {
    const b = Buffer.from(a)
    b[at] = (b[at] as number) ^ 1
    assert.equal(sameBytes(a, b), false, `a difference at ${at}`)
  }
})
