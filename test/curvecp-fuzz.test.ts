/**
 * The fuzzer of scripts/fuzz.ts, in-process, 20,000 mutated packets: no crash in any decoder
 * (only DecodeError), handshake or session method (never a throw), frame or packet framing.
 * The full run (1,000,000) is `node --import tsx scripts/fuzz.ts`.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatResult, mutate, prng, runFuzz } from '../scripts/fuzz.js'

test('20,000 mutated packets: no crashes, and the fuzzer reaches every target', () => {
  const result = runFuzz({ iterations: 20_000, seed: 0x5eed })
  const summary = formatResult(result)
  const details = result.samples.map((s) => `${s.target}: ${s.error}\n  ${s.input}`).join('\n')
  assert.equal(result.crashes, 0, `${summary}\n${details}`)
  assert.equal(result.accepted + result.rejected, 20_000)
  // Not vacuous: the mutations reach the decoders and the authenticated paths, some get through
  // (unauthenticated bytes, e.g. the Hello padding or an extension), most do not.
  assert.equal(result.perTarget.packetKind?.accepted, 20_000, 'packetKind always answers')
  for (const target of [
    'decodeHello',
    'decodeCookie',
    'decodeInitiate/udp',
    'decodeInitiate/stream',
    'decodeClientMessage/udp',
    'decodeServerMessage/stream',
    'ServerHandshake.handleHello',
    'ServerHandshake.handleInitiate',
    'ClientHandshake.handleCookie',
    'Session.open/server',
    'Session.open/client',
    'FrameDecoder.push',
    'LengthPrefixDecoder.push'
  ]) {
    const c = result.perTarget[target]
    assert.ok(c, `${target} was called`)
    assert.equal(c.accepted + c.rejected, 20_000, `${target} saw every packet`)
    assert.ok(c.rejected > 0, `${target} rejected something`)
  }
  for (const target of ['ServerHandshake.handleHello', 'ServerHandshake.handleInitiate', 'Session.open/server', 'Session.open/client', 'FrameDecoder.push']) {
    assert.ok((result.perTarget[target]?.accepted ?? 0) > 0, `${target} accepted some mutated packets: ${summary}`)
  }
  assert.ok(result.accepted > 0 && result.rejected > result.accepted, summary)
})

test('the generator is seeded: the same seed gives the same sequence', () => {
  const a = prng(42)
  const b = prng(42)
  const c = prng(43)
  const xs = Array.from({ length: 100 }, () => a())
  assert.deepEqual(Array.from({ length: 100 }, () => b()), xs)
  assert.notDeepEqual(Array.from({ length: 100 }, () => c()), xs)
  assert.ok(xs.every((x) => x >= 0 && x < 1))
})

test('mutate: each mutation kind, never touching its input', () => {
  const p = Buffer.from([1, 2, 3, 4])
  const copy = Buffer.from(p)
  assert.deepEqual(mutate(p, [{ kind: 'flip', at: 5, bit: 1 }]), Buffer.from([1, 0, 3, 4]))
  assert.deepEqual(mutate(p, [{ kind: 'set', at: 2, value: 9 }]), Buffer.from([1, 2, 9, 4]))
  assert.deepEqual(mutate(p, [{ kind: 'truncate', at: 2 }]), Buffer.from([1, 2]))
  assert.deepEqual(mutate(p, [{ kind: 'extend', bytes: Buffer.from([7]) }]), Buffer.from([1, 2, 3, 4, 7]))
  assert.deepEqual(mutate(p, [{ kind: 'splice', other: Buffer.from([8, 9]), at: 1, from: 1 }]), Buffer.from([1, 9]))
  assert.deepEqual(mutate(Buffer.alloc(0), [{ kind: 'flip', at: 3, bit: 0 }]), Buffer.alloc(0))
  assert.deepEqual(p, copy)
})
