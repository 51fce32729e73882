/**
 * The TCP length-prefix decoder (src/transports/length-prefix.ts): every packet comes out whole and
 * in order however the stream is cut (prefixes and packets split across reads, many packets in
 * one read), a packet that straddles reads is exactly its own bytes, and the bounds hold.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DecodeError } from '../src/errors.js'
import { LengthPrefixDecoder, encodeLengthPrefix } from '../src/transports/length-prefix.js'

/** Deterministic bytes (a small LCG), so that a failure repeats. */
function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 0x1_0000_0000
  }
}

function packets(rand: () => number, count: number, max: number): Buffer[] {
  return Array.from({ length: count }, () => {
    const p = Buffer.allocUnsafe(1 + Math.floor(rand() * max))
    for (let i = 0; i < p.length; i++) p[i] = Math.floor(rand() * 256)
    return p
  })
}

function stream(ps: Buffer[]): Buffer {
  return Buffer.concat(ps.flatMap((p) => [encodeLengthPrefix(p.length), p]))
}

test('packets come out whole and in order at every cut (1-byte reads, random reads, one read)', () => {
  const rand = prng(7)
  for (const max of [3, 300, 70_000]) {
    const ps = packets(rand, 40, max)
    const all = stream(ps)
    const cuts: number[][] = [
      [all.length],
      Array.from({ length: all.length }, () => 1).slice(0, max > 1000 ? 0 : all.length),
      (() => {
        const sizes: number[] = []
        for (let left = all.length; left > 0; ) {
          const n = Math.min(left, 1 + Math.floor(rand() * (max * 1.5)))
          sizes.push(n)
          left -= n
        }
        return sizes
      })()
    ].filter((s) => s.length)
    for (const sizes of cuts) {
      const d = new LengthPrefixDecoder(100_000)
      const got: Buffer[] = []
      let at = 0
      for (const n of sizes) {
        // Each read in a buffer of its own, as a socket gives them.
        d.push(Buffer.from(all.subarray(at, at + n)), (p) => got.push(Buffer.from(p)))
        at += n
      }
      assert.equal(got.length, ps.length, `max ${max}, ${sizes.length} reads`)
      got.forEach((p, i) => assert.ok(p.equals(ps[i] as Buffer), `packet ${i} (max ${max}, ${sizes.length} reads)`))
      assert.equal(d.pending, 0)
    }
  }
})

test('a packet across reads is a buffer of exactly its bytes; one within a read is a view of it', () => {
  // Above the 4 KiB of Buffer's shared pool, so that each buffer is its own allocation.
  const a = Buffer.alloc(7_000, 1)
  const b = Buffer.alloc(5_000, 2)
  const all = stream([a, b])
  const read = (from: number, to: number): Buffer => {
    const r = Buffer.alloc(to - from) // unpooled, as a socket's reads are
    all.copy(r, 0, from, to)
    return r
  }
  const d = new LengthPrefixDecoder(10_000)
  const got: Buffer[] = []
  const first = read(0, 6_000)
  const second = read(6_000, all.length)
  d.push(first, (p) => got.push(p))
  assert.equal(got.length, 0)
  assert.equal(d.pending, 5_996)
  d.push(second, (p) => got.push(p))
  assert.equal(got.length, 2)
  const [p0, p1] = got as [Buffer, Buffer]
  assert.ok(p0.equals(a))
  // Copied once and alone: not a merge of both reads (which held both and the second packet too).
  assert.equal(p0.buffer.byteLength, 7_000)
  assert.ok(p1.equals(b))
  assert.equal(p1.buffer, second.buffer, 'the second packet is a view of the read it lies in')
  assert.equal(d.pending, 0)
})

test('a length prefix split across reads is read right, and lengths outside 1..max throw', () => {
  const p = Buffer.alloc(0x0102, 9)
  const all = stream([p])
  const d = new LengthPrefixDecoder(1_000)
  const got: Buffer[] = []
  d.push(Buffer.from(all.subarray(0, 1)), (x) => got.push(x))
  d.push(Buffer.from(all.subarray(1, 3)), (x) => got.push(x))
  d.push(Buffer.from(all.subarray(3)), (x) => got.push(x))
  assert.equal(got.length, 1)
  assert.ok((got[0] as Buffer).equals(p))
  assert.throws(() => new LengthPrefixDecoder(1_000).push(encodeLengthPrefix(1_001), () => {}), DecodeError)
  assert.throws(() => new LengthPrefixDecoder(1_000).push(encodeLengthPrefix(0), () => {}), DecodeError)
  // Split prefix of an oversized length: refused as soon as its 4 bytes are in, nothing buffered for it.
  const big = new LengthPrefixDecoder(1_000)
  big.push(Buffer.from([0, 0]), () => {})
  assert.throws(() => big.push(Buffer.from([0x10, 0]), () => {}), DecodeError)
})
