// The session choice (src/connections/session-choice.ts) as a pure function: both sides of a
// crossing dial must keep the same session, whichever signId is smaller.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chooseSession, type SessionEnds } from '../src/connections/session-choice.js'

const A = 'AAAA-smaller-signId'
const B = 'BBBB-larger-signId'
const MAX = 4

/** The session as seen from `us`: dialled by `dialler`, with `peer` at the other end. */
function seen(us: string, peer: string, dialler: string): SessionEnds {
  return { initiator: dialler === us, remoteSignId: peer }
}

test('the first session with a peer becomes active', () => {
  assert.equal(chooseSession({ us: A, current: undefined, fresh: seen(A, B, B), open: 1, maxChannels: MAX }), 'activate')
  assert.equal(chooseSession({ us: A, current: undefined, fresh: seen(A, B, A), open: 1, maxChannels: MAX }), 'activate')
})

test('crossing dials: both sides keep the session dialled by the smaller signId (A dialled first)', () => {
  // A's dial came up first on both sides; then B's dial.
  const atA = chooseSession({ us: A, current: seen(A, B, A), fresh: seen(A, B, B), open: 2, maxChannels: MAX })
  const atB = chooseSession({ us: B, current: seen(B, A, A), fresh: seen(B, A, B), open: 2, maxChannels: MAX })
  assert.equal(atA, 'refuse', 'A keeps its own dial and closes B\'s')
  assert.equal(atB, 'refuse', 'B keeps A\'s dial and closes its own')
})

test('crossing dials: both sides keep the session dialled by the smaller signId (B dialled first)', () => {
  // B's dial came up first on both sides; then A's dial replaces it.
  const atA = chooseSession({ us: A, current: seen(A, B, B), fresh: seen(A, B, A), open: 2, maxChannels: MAX })
  const atB = chooseSession({ us: B, current: seen(B, A, B), fresh: seen(B, A, A), open: 2, maxChannels: MAX })
  assert.equal(atA, 'replace', 'A takes its own dial and closes B\'s')
  assert.equal(atB, 'replace', 'B takes A\'s dial and closes its own')
})

test('crossing dials seen in a different order on each side still agree', () => {
  // A saw its own dial first, B saw its own dial first: each side ends with A's dial.
  const atA = chooseSession({ us: A, current: seen(A, B, A), fresh: seen(A, B, B), open: 2, maxChannels: MAX })
  const atB = chooseSession({ us: B, current: seen(B, A, B), fresh: seen(B, A, A), open: 2, maxChannels: MAX })
  assert.equal(atA, 'refuse')
  assert.equal(atB, 'replace')
})

test('several dials by the same node: the dialler keeps the newest, the other side keeps spares up to the bound', () => {
  // We dialled both: the new one replaces the old one.
  assert.equal(chooseSession({ us: A, current: seen(A, B, A), fresh: seen(A, B, A), open: 2, maxChannels: MAX }), 'replace')
  // The peer dialled both: use the newest, keep the other open (the dialler decides which goes).
  assert.equal(chooseSession({ us: A, current: seen(A, B, B), fresh: seen(A, B, B), open: 2, maxChannels: MAX }), 'activate-keep-spare')
  assert.equal(chooseSession({ us: A, current: seen(A, B, B), fresh: seen(A, B, B), open: MAX, maxChannels: MAX }), 'activate-keep-spare')
  assert.equal(chooseSession({ us: A, current: seen(A, B, B), fresh: seen(A, B, B), open: MAX + 1, maxChannels: MAX }), 'activate-drop-oldest')
})
