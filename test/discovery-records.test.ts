/**
 * The records discovery services exchange: the nodeInfo gate (each kind of bad record refused
 * and counted), TXT strings split at 255 bytes and joined, and the Pkarr record codec.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import dns from 'dns-packet'
import { NodeInfoGate } from '../src/services/shared/remote-node-info.js'
import { splitTxt, joinTxt } from '../src/services/shared/txt.js'
import { encodeRecord, decodeRecord, bep44SigningBytes } from '../src/services/mainline/pkarr-record.js'
import { parseId } from '../src/identity/ids.js'
import { badRecords, fakeNode } from './helpers/discovery.js'

test('the gate passes a fresh signed nodeInfo and refuses each kind of bad record, counted by reason', () => {
  const gate = new NodeInfoGate()
  const node = fakeNode()
  const good = node.nodeInfo()
  const passed = gate.check(good)
  assert.ok('nodeInfo' in passed, JSON.stringify(passed))
  assert.equal(passed.nodeInfo.signId, node.signId)
  for (const [kind, record] of Object.entries(badRecords(node))) {
    const r = gate.check(record)
    assert.deepEqual(r, { reason: kind }, kind)
    assert.equal(gate.dropped[kind as keyof typeof gate.dropped], 1, kind)
  }
  assert.deepEqual(gate.check({ signId: 'nope' }), { reason: 'malformed' })
  assert.deepEqual(gate.check(null), { reason: 'malformed' })
  assert.equal(gate.droppedTotal, 7)
  // A record that passed once is not trusted again once changed (the verified cache keys on all of it).
  assert.deepEqual(gate.check({ ...good, connectionInfo: [] }), { reason: 'forged' })
  // Freshness is judged on every check, cached or not.
  const later = new NodeInfoGate({ now: () => Date.now() + 3 * 60 * 60_000 })
  assert.deepEqual(later.check(good), { reason: 'stale' })
})

test('TXT strings: at most 255 bytes each, split outside characters, joined back; joins past the bound refused', () => {
  const text = JSON.stringify({ s: 'é'.repeat(400), a: 'x'.repeat(300) })
  const parts = splitTxt(text)
  assert.ok(parts.length >= 4)
  for (const p of parts) {
    assert.ok(p.length <= 255 && p.length > 0)
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(p))
  }
  assert.equal(joinTxt(parts, 10_000), text)
  assert.equal(joinTxt(parts, 100), undefined)
  assert.equal(joinTxt([1, 2], 100), undefined)
})

test('Pkarr record: our nodeInfo in a DNS packet under _mm.<z32 key>, with A records; decoded back', () => {
  const node = fakeNode()
  const nodeInfo = node.nodeInfo(Date.now(), [
    { transportType: 'tcp', transportInfo: { address: '10.1.2.3', port: 4000 } },
    { transportType: 'udp', transportInfo: { address: '10.1.2.3', port: 4001 } }
  ])
  const key = parseId(node.signId) as Buffer
  const v = encodeRecord(nodeInfo, key)
  assert.ok(v.length < 1000)
  const packet = dns.decode(v)
  assert.deepEqual(packet.answers?.filter((a) => a.type === 'A').map((a) => (a as { data: unknown }).data), ['10.1.2.3'])
  const decoded = decodeRecord(v, key)
  assert.ok('candidate' in decoded)
  assert.deepEqual(new NodeInfoGate().accept(decoded.candidate), nodeInfo)
  // Fetched under another key, the record names another node: nothing usable.
  assert.ok('reason' in decodeRecord(v, parseId(fakeNode().signId) as Buffer))
  assert.ok('reason' in decodeRecord(Buffer.from('garbage'), key))
  assert.ok('reason' in decodeRecord(Buffer.alloc(1001), key))
  assert.equal(bep44SigningBytes(5, Buffer.from('ab')).toString(), '3:seqi5e1:v2:ab')
})
