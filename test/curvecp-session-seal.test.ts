/**
 * The TCP hot path's ways of sealing and opening: a packet sealed from parts, or with room for the
 * length prefix, or around the message in its own buffer (sealInPlace), is the packet seal() makes
 * of the same bytes; open() counts each refusal (header read in place) under its reason; an in-place open gives the message
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

test('sealInPlace(message) is seal(message), built around the message in its own buffer (both roles); too little room throws', () => {
  for (const role of ['server', 'client'] as const) {
    const key = randomBytes(32)
    const common = { clientShortTermKey: randomBytes(32), clientExtension: randomBytes(16), serverExtension: randomBytes(16), limits: STREAM_LIMITS }
    const make = (): Session => new Session({ ...common, role, sharedKey: Buffer.from(key), nextSendCounter: 9, lastReceivedCounter: 0 })
    const a = make()
    const b = make()
    for (const headroom of [0, 4]) {
      const message = randomBytes(70_000)
      const expected = a.seal(message)
      const room = Session.roomFor(headroom) + 7 // more room than needed: the packet starts where it must
      const buffer = Buffer.alloc(room + message.length)
      message.copy(buffer, room)
      const inPlace = b.sealInPlace(buffer.subarray(room), headroom)
      assert.equal(inPlace.buffer, buffer.buffer, `${role}: no second buffer`)
      assert.equal(inPlace.byteOffset + inPlace.length, buffer.byteOffset + buffer.length, `${role}: the packet ends where the message did`)
      assert.deepEqual(inPlace.subarray(headroom), expected, `${role}, headroom ${headroom}: the same packet as seal()`)
    }
    const needed = 4 + (role === 'client' ? 96 : 64) // length prefix, the role's header and the MAC
    const tight = Buffer.alloc(needed - 1 + 100)
    assert.throws(() => b.sealInPlace(tight.subarray(needed - 1), 4), /bytes before the message/)
    // A refused seal used no nonce: the next packets still match the twin's.
    assert.deepEqual(b.seal(Buffer.from('x')), a.seal(Buffer.from('x')))
  }
})

test('open() reads the header in place: each refusal is counted under its reason, and nothing refused reaches the box', async () => {
  const { UDP_LIMITS } = await import('../src/curvecp/packets.js')
  for (const role of ['server', 'client'] as const) {
    const key = randomBytes(32)
    const common = { clientShortTermKey: randomBytes(32), clientExtension: randomBytes(16), serverExtension: randomBytes(16) }
    const peerRole = role === 'server' ? 'client' : 'server'
    const make = (r: 'client' | 'server', limits = STREAM_LIMITS): Session => new Session({ ...common, limits, role: r, sharedKey: Buffer.from(key), nextSendCounter: 1, lastReceivedCounter: 0 })
    const sender = make(peerRole)
    const receiver = make(role)
    const expect = (packet: Buffer, reason: string, why: string): void => {
      const before = { ...receiver.drops }
      assert.equal(receiver.open(packet), null, `${role}: ${why}`)
      for (const [r, n] of Object.entries(receiver.drops)) assert.equal(n, before[r as keyof typeof before] + (r === reason ? 1 : 0), `${role}: ${why} counts as ${reason}`)
    }
    const base = role === 'server' ? 96 : 64
    const largest = sender.seal(randomBytes(STREAM_LIMITS.maxMessage))
    expect(Buffer.concat([largest, Buffer.alloc(1)]), 'malformed', 'one byte more than the largest message')
    expect(largest.subarray(0, base - 1), 'malformed', 'shorter than an empty message')
    const wrongMagic = Buffer.from(sender.seal(Buffer.from('hi')))
    wrongMagic[7] = (wrongMagic[7] as number) ^ 1
    expect(wrongMagic, 'malformed', 'another magic')
    // The fields outside the box: the two extensions, and C' in a Client Message.
    const fields = role === 'server' ? [8, 24, 40, 71] : [8, 24, 39]
    for (const at of fields) {
      const p = Buffer.from(sender.seal(Buffer.from('hi')))
      p[at] = (p[at] as number) ^ 0x80
      expect(p, 'wrong-key', `byte ${at} of the header changed`)
    }
    const good = sender.seal(Buffer.from('hello'))
    assert.deepEqual(receiver.open(good), Buffer.from('hello'), `${role}: a good packet still opens`)
    expect(good, 'replayed', 'the same packet again')
    // UDP limits: a message that is not a positive multiple of 16 is refused before the box.
    const udpSender = make(peerRole)
    const udpReceiver = make(role, UDP_LIMITS)
    const unpadded = udpSender.seal(randomBytes(17))
    assert.equal(udpReceiver.open(unpadded), null)
    assert.equal(udpReceiver.drops.malformed, 1, `${role}: an unpadded message under UDP limits is malformed`)
    assert.ok(udpReceiver.open(udpSender.seal(randomBytes(32))), `${role}: a padded one opens`)
  }
})
