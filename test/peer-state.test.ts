// Peer's explicit state (src/connections/peer.ts): each step moves from the state it expects,
// and refuses any other.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { Peer } from '../src/connections/peer.js'
import type { Channel } from '../src/connections/channel.js'

const channel = new EventEmitter() as unknown as Channel

test('a dial starts from idle only, and ends in idle when no channel came of it', () => {
  const peer = new Peer('p')
  assert.equal(peer.state, 'idle')
  peer.dialStarted()
  assert.equal(peer.state, 'dialing')
  assert.equal(peer.dialing, true)
  assert.throws(() => peer.dialStarted(), { name: 'StateError' })
  peer.dialEnded()
  assert.equal(peer.state, 'idle')
  assert.equal(peer.dialing, false)
})

test('backoff: from idle, back to idle when its timer fires (then the retry runs)', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const peer = new Peer('p')
  let retried = ''
  peer.backoff(5, () => (retried = peer.state))
  assert.equal(peer.state, 'backoff')
  assert.equal(peer.backoffMs, 5)
  assert.throws(() => peer.dialStarted(), { name: 'StateError' }, 'no dial during a backoff')
  assert.throws(() => peer.backoff(5, () => {}), { name: 'StateError' })
  t.mock.timers.tick(4)
  assert.equal(retried, '', 'not before its time')
  t.mock.timers.tick(1)
  assert.equal(retried, 'idle', 'the retry runs in idle')
  assert.equal(peer.state, 'idle')
})

test('connected from dialing, backoff or idle; a pending backoff is cancelled and reset', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const peer = new Peer('p')
  let retried = false
  peer.backoff(20, () => (retried = true))
  peer.connected(channel)
  assert.equal(peer.state, 'connected')
  assert.equal(peer.channel, channel)
  assert.equal(peer.backoffMs, 0)
  t.mock.timers.tick(1_000)
  assert.equal(retried, false, 'the backoff timer was cleared')
  assert.equal(peer.state, 'connected')
})

test('disconnected: from connected only; to dialing while a dial of ours still runs, else idle', () => {
  const peer = new Peer('p')
  assert.throws(() => peer.disconnected(), { name: 'StateError' })
  peer.dialStarted()
  peer.connected(channel) // the peer dialled us while our dial ran
  peer.dialEnded()
  assert.equal(peer.state, 'connected', 'our dial ending does not leave connected')
  peer.disconnected()
  assert.equal(peer.state, 'idle')
  assert.equal(peer.channel, undefined)

  const other = new Peer('q')
  other.dialStarted()
  other.connected(channel)
  other.disconnected()
  assert.equal(other.state, 'dialing', 'our dial still runs')
  other.dialEnded()
  assert.equal(other.state, 'idle')
})

test('stop() clears the backoff timer and leaves the peer idle', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const peer = new Peer('p')
  let retried = false
  peer.backoff(10, () => (retried = true))
  peer.stop()
  assert.equal(peer.state, 'idle')
  t.mock.timers.tick(1_000)
  assert.equal(retried, false)
})
