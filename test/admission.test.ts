/**
 * Handshake admission (src/connections/admission.ts): per-address and global bounds on
 * handshakes under way, token-bucket rates, and the bounded address table. A fake clock.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HandshakeAdmission, MAX_TRACKED_ADDRESSES, addressOf } from '../src/connections/admission.js'
import { emptyCounts } from '../src/connections/counters.js'

function make(limits: ConstructorParameters<typeof HandshakeAdmission>[0]) {
  let now = 1_000_000
  const counts = emptyCounts()
  const admission = new HandshakeAdmission(limits, counts, () => now)
  return { admission, counts, advance: (ms: number) => (now += ms) }
}

test('per address: at most perAddress under way; one ending makes room', () => {
  const { admission, counts } = make({ perAddress: 2, global: 100, ratePerAddress: 100, rateGlobal: 1000 })
  const a = {}
  const b = {}
  assert.equal(admission.begin(a, '10.0.0.1', () => {}), true)
  assert.equal(admission.begin(b, '10.0.0.1', () => {}), true)
  assert.equal(admission.begin({}, '10.0.0.1', () => {}), false)
  assert.equal(counts.handshakeConcurrentPerAddress, 1)
  assert.equal(admission.begin({}, '10.0.0.2', () => {}), true, 'another address is not affected')
  admission.end(a)
  admission.end(a) // idempotent
  assert.equal(admission.begin({}, '10.0.0.1', () => {}), true)
  assert.equal(admission.active, 3)
})

test('global: past the bound the oldest handshake under way is aborted to make room', () => {
  const { admission, counts } = make({ perAddress: 10, global: 3, ratePerAddress: 100, rateGlobal: 1000 })
  const aborted: number[] = []
  for (let i = 0; i < 5; i++) assert.equal(admission.begin({}, `10.0.0.${i}`, () => aborted.push(i)), true)
  assert.deepEqual(aborted, [0, 1])
  assert.equal(admission.active, 3)
  assert.equal(counts.handshakeConcurrentGlobal, 2)
})

test('rates: a bucket of twice the rate per address, refilled with time; the global one apart', () => {
  const { admission, counts, advance } = make({ perAddress: 100, global: 100, ratePerAddress: 5, rateGlobal: 6 })
  let ok = 0
  for (let i = 0; i < 20; i++) if (admission.allow('10.0.0.1')) ok++
  assert.equal(ok, 10, 'burst of twice the rate')
  assert.equal(counts.handshakeRatePerAddress, 10)
  // A refused per-address attempt does not drain the global bucket: another address still gets in.
  for (let i = 0; i < 20; i++) if (admission.allow('10.0.0.2')) ok++
  assert.equal(ok, 12, 'the global bucket (12) had 2 left for the second address')
  assert.equal(counts.handshakeRateGlobal, 8)
  assert.equal(counts.handshakeRatePerAddress, 20)
  advance(1_000)
  assert.equal(admission.allow('10.0.0.1'), true, 'refilled after a second')
})

test('the address table stays bounded and forgets idle addresses', () => {
  const { admission } = make({ perAddress: 1, global: 10, ratePerAddress: 1, rateGlobal: 1e9 })
  for (let i = 0; i < MAX_TRACKED_ADDRESSES + 10; i++) admission.allow(`a${i}`)
  const size = (admission as unknown as { addresses: Map<string, unknown> }).addresses.size
  assert.ok(size <= MAX_TRACKED_ADDRESSES, `tracked ${size}`)
})

test('addressOf: the address of tcp:/udp: remotes, IPv6 included', () => {
  assert.equal(addressOf('tcp:127.0.0.2:5000'), '127.0.0.2')
  assert.equal(addressOf('udp:::1:5000'), '::1')
})
