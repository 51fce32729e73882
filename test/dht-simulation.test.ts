/**
 * The Kademlia simulation (scripts/dht-sim.ts) at test scale: 200 real platforms on loopback,
 * each bootstrapped from one random earlier node; every lookup of a random node must succeed.
 * CurveCP over UDP: one socket per node. Over TCP each session costs a file descriptor at both
 * ends, all in this process, and 200 nodes come near the 20,000 fd limit (dials then fail).
 * (The 1,000-node run with its figures is in `npm run bench`.)
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { simulate } from '../scripts/dht-sim.js'

test('200 nodes on loopback: 100% of 200 lookups succeed, in few hops', { timeout: 600_000 }, async () => {
  const r = await simulate({ nodes: 200, lookups: 200, joinBatch: 25, transport: 'udp' })
  console.log(`# dht simulation: ${JSON.stringify(r)}`)
  assert.equal(r.nodes, 200)
  assert.equal(r.succeeded, 200, `lookups that failed: ${200 - r.succeeded}`)
  assert.ok(r.hopsMedian <= 4, `median hops ${r.hopsMedian}`)
})
