// The per-stream window record (src/storage/seen-window.ts): a stream's first message marks the
// slots of negative seqs handled (no such message exists), byte-wise now; checked slot by slot
// against the definition for every first seq of small windows and around the edges of the default.
import test from 'node:test'
import assert from 'node:assert/strict'
import { fresh, getBit, handled, mark } from '../src/storage/seen-window.js'

/** The definition: slot of x handled for x in (seq - window, seq] with x < 0 or x === seq. */
function expected(seq: number, window: number, slot: number): boolean {
  for (let x = seq - window + 1; x <= seq; x++) if (((x % window) + window) % window === slot) return x < 0 || x === seq
  return false
}

test('a first message of seq s: exactly the slots of negative seqs and of s are handled, for every s of small windows and the edges of 4,096', () => {
  for (const window of [8, 16, 24, 64, 4096]) {
    const seqs = window === 4096 ? [1, 2, 7, 8, 9, 15, 16, 17, 4087, 4088, 4089, 4093, 4094, 4095, 4096, 9000] : Array.from({ length: 3 * window }, (_, i) => i)
    for (const seq of seqs) {
      const rec = fresh(seq, Infinity, window)
      for (let slot = 0; slot < window; slot++) {
        const got = rec.bits === undefined ? true : getBit(rec.bits, slot)
        assert.equal(got, expected(seq, window, slot), `window ${window}, first seq ${seq}, slot ${slot}`)
      }
      for (let x = Math.max(0, seq - window + 1); x < seq; x++) assert.equal(handled(rec, x, window), false, `window ${window}: seq ${x} below the first ${seq} is not handled`)
      assert.equal(handled(rec, seq, window), true)
    }
  }
})

test('a jump of a whole window or more marks the new window the same way', () => {
  const window = 64
  for (const seq of [3, 70, 200]) {
    const rec = fresh(0, Infinity, window)
    mark(rec, 1, window)
    mark(rec, seq + window, window) // past the window: the bitmap starts over
    for (let x = seq + 1; x < seq + window; x++) assert.equal(handled(rec, x, window), false, `seq ${x} not handled`)
    assert.equal(handled(rec, seq + window, window), true)
  }
})
