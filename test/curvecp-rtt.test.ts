/**
 * The RTT estimator and retransmission timeout of the CurveCP message stream, step by step:
 * RFC 6298's first-sample and smoothing rules, our half-RTT margin, the clamps and the back-off.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { INITIAL_RTO_MS, MAX_RTO_MS, MIN_RTO_MS, RttEstimator } from '../src/curvecp/rtt.js'

test('before any sample the RTO is the initial one and the RTT unknown', () => {
  const rtt = new RttEstimator()
  assert.equal(rtt.srtt, 0)
  assert.equal(rtt.rto, INITIAL_RTO_MS)
  assert.equal(new RttEstimator({ initialRtoMs: 250 }).rto, 250)
})

test('the first sample sets SRTT = R and RTTVAR = R/2, so RTO = SRTT + 4 RTTVAR = 3R', () => {
  const rtt = new RttEstimator()
  rtt.sample(100)
  assert.equal(rtt.srtt, 100)
  assert.equal(rtt.rttvar, 50)
  assert.equal(rtt.rto, 300)
})

test('later samples move SRTT by 1/8 and RTTVAR by 1/4 of the difference', () => {
  const rtt = new RttEstimator()
  rtt.sample(100)
  rtt.sample(200)
  // delta 100: SRTT 100 + 100/8; RTTVAR 50 + (100 - 50)/4
  assert.equal(rtt.srtt, 112.5)
  assert.equal(rtt.rttvar, 62.5)
  assert.equal(rtt.rto, 112.5 + 4 * 62.5)
  rtt.sample(50)
  // delta -62.5: SRTT 112.5 - 62.5/8; RTTVAR 62.5 + (62.5 - 62.5)/4
  assert.equal(rtt.srtt, 104.6875)
  assert.equal(rtt.rttvar, 62.5)
})

test('a settled round trip keeps a margin of half an RTT above it', () => {
  const rtt = new RttEstimator()
  for (let i = 0; i < 200; i++) rtt.sample(100)
  assert.ok(rtt.rttvar < 1e-6, `rttvar ${rtt.rttvar}`)
  assert.equal(rtt.srtt, 100)
  assert.equal(rtt.rto, 150)
})

test('the RTO is clamped to [minRto, maxRto]', () => {
  const small = new RttEstimator()
  small.sample(1)
  assert.equal(small.rto, MIN_RTO_MS)
  const large = new RttEstimator()
  large.sample(9000)
  assert.equal(large.rto, MAX_RTO_MS)
  const custom = new RttEstimator({ minRtoMs: 50, maxRtoMs: 400 })
  custom.sample(5)
  assert.equal(custom.rto, 50)
  custom.sample(1000)
  assert.equal(custom.rto, 400)
})

test('negative and NaN samples are ignored', () => {
  const rtt = new RttEstimator()
  rtt.sample(-5)
  rtt.sample(Number.NaN)
  assert.equal(rtt.srtt, 0)
  assert.equal(rtt.rto, INITIAL_RTO_MS)
  rtt.sample(0)
  assert.equal(rtt.rto, MIN_RTO_MS, 'a zero sample counts (loopback)')
})

test('each expiry doubles the RTO up to maxRto; the next sample sets it afresh', () => {
  const rtt = new RttEstimator({ maxRtoMs: 1000 })
  rtt.sample(100)
  rtt.backOff()
  assert.equal(rtt.rto, 600)
  rtt.backOff()
  assert.equal(rtt.rto, 1000)
  rtt.backOff()
  assert.equal(rtt.rto, 1000)
  rtt.sample(100)
  assert.ok(rtt.rto < 600, `rto ${rtt.rto} after a new sample`)
})

test('keepAtLeast never shortens the timeout', () => {
  const rtt = new RttEstimator()
  rtt.sample(100)
  rtt.keepAtLeast(200)
  assert.equal(rtt.rto, 300)
  rtt.keepAtLeast(700)
  assert.equal(rtt.rto, 700)
})

test('recovery lasts one smoothed RTT, at least minRto', () => {
  const rtt = new RttEstimator({ minRtoMs: 30 })
  assert.equal(rtt.recoveryMs, 30)
  rtt.sample(80)
  assert.equal(rtt.recoveryMs, 80)
})
