/**
 * Congestion control of the CurveCP message stream, step by step: slow start, additive
 * increase, one halving per round trip on fast retransmit, the timeout cut and its undo.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CongestionControl, INITIAL_WINDOW_BLOCKS, MIN_WINDOW_BLOCKS } from '../src/curvecp/congestion.js'
import { RttEstimator } from '../src/curvecp/rtt.js'

function make(initial = INITIAL_WINDOW_BLOCKS, max = Infinity): { cc: CongestionControl; rtt: RttEstimator } {
  const rtt = new RttEstimator()
  rtt.sample(100)
  return { cc: new CongestionControl(rtt, initial, max), rtt }
}

test('slow start: each acknowledged block widens the window by one', () => {
  const { cc } = make()
  assert.equal(cc.cwnd, INITIAL_WINDOW_BLOCKS)
  assert.equal(cc.ssthresh, Infinity)
  for (let i = 0; i < 10; i++) cc.onAcked()
  assert.equal(cc.cwnd, INITIAL_WINDOW_BLOCKS + 10)
})

test('above ssthresh: one block more per window of acknowledged blocks', () => {
  const { cc } = make(16)
  cc.onLoss(0)
  assert.equal(cc.ssthresh, 8)
  assert.equal(cc.cwnd, 8)
  cc.onAcked()
  assert.equal(cc.cwnd, 8 + 1 / 8)
  for (let i = 1; i < 8; i++) cc.onAcked()
  assert.ok(cc.cwnd > 8.9 && cc.cwnd < 9, `cwnd ${cc.cwnd} after a window of acknowledgements`)
})

test('the window is capped at maxWindowBlocks', () => {
  const { cc } = make(8, 10)
  for (let i = 0; i < 5; i++) cc.onAcked()
  assert.equal(cc.cwnd, 10)
})

test('fast retransmit halves the window at most once per round trip', () => {
  const { cc, rtt } = make(32)
  cc.onLoss(1000)
  assert.equal(cc.cwnd, 16)
  cc.onLoss(1000 + rtt.srtt - 1)
  assert.equal(cc.cwnd, 16, 'a second loss in the same round trip does not cut again')
  cc.onLoss(1000 + rtt.srtt)
  assert.equal(cc.cwnd, 8, 'a loss one round trip later does')
})

test('the window never shrinks below MIN_WINDOW_BLOCKS on loss', () => {
  const { cc } = make(3)
  cc.onLoss(0)
  assert.equal(cc.ssthresh, MIN_WINDOW_BLOCKS)
  assert.equal(cc.cwnd, MIN_WINDOW_BLOCKS)
})

test('a timeout shrinks to MIN_WINDOW_BLOCKS, even during recovery', () => {
  const { cc } = make(20)
  cc.onLoss(0)
  assert.equal(cc.cwnd, 10)
  cc.onTimeout(1)
  assert.equal(cc.ssthresh, 5)
  assert.equal(cc.cwnd, MIN_WINDOW_BLOCKS)
})

test('a spurious timeout is undone: window, ssthresh and the RTO before it come back', () => {
  const { cc, rtt } = make(20)
  const rtoBefore = rtt.rto
  cc.onTimeout(0)
  rtt.backOff()
  assert.equal(cc.undoPossible, true)
  cc.onAcked()
  assert.equal(cc.undoTimeout(), true)
  assert.equal(cc.cwnd, 20)
  assert.equal(cc.ssthresh, Infinity)
  assert.equal(rtt.rto, rtoBefore * 2, 'the backed-off RTO stays (it is the larger)')
  assert.equal(cc.undoPossible, false)
  assert.equal(cc.undoTimeout(), false, 'one undo per timeout')
  assert.equal(cc.cwnd, 20)
})

test('the undo never shrinks a window that grew past the one before the timeout', () => {
  const { cc } = make(4)
  cc.onTimeout(0)
  for (let i = 0; i < 20; i++) cc.onAcked()
  const grown = cc.cwnd
  assert.ok(grown > 4, `cwnd ${grown}`)
  assert.equal(cc.undoTimeout(), true)
  assert.equal(cc.cwnd, grown)
})

test('a confirmed timeout cannot be undone', () => {
  const { cc } = make(20)
  cc.onTimeout(0)
  cc.timeoutConfirmed()
  assert.equal(cc.undoPossible, false)
  assert.equal(cc.undoTimeout(), false)
  assert.equal(cc.cwnd, MIN_WINDOW_BLOCKS)
})

test('allows() lets whole blocks of the window go, and always one', () => {
  const { cc } = make(2.9)
  assert.equal(cc.allows(1), true)
  assert.equal(cc.allows(2), false)
  const tiny = make(0.5).cc
  assert.equal(tiny.allows(0), true)
  assert.equal(tiny.allows(1), false)
})
