// The TCP server's first Message (src/connections/tcp-channel.ts): when the Initiate carried
// bytes, the server's answer to them is its first Message (no empty one written ahead of it);
// with nothing to answer, an empty one follows after a turn, so the client may send on.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { nextEvent } from './helpers/index.js'
import { tcpChannelPair as dialled } from './helpers/tcp-channels.js'


test('a server answering the bytes of the Initiate within the turn writes no empty Message ahead of its answer', async () => {
  const s = await dialled('ping')
  s.server.on('data', () => s.server.write(Buffer.from('pong')))
  const got: Buffer[] = []
  s.client.on('data', (d: Buffer) => got.push(d))
  s.client.resume()
  await nextEvent(s.client, 'secure')
  await new Promise((r) => setTimeout(r, 20))
  assert.equal(Buffer.concat(got).toString(), 'pong', 'the answer opened the session')
  assert.equal(s.server.stats.packetsOut, 2, 'Cookie and the answer only')
  assert.equal(s.client.stats.packetsIn, 2)
  await s.done()
})

test('a server with nothing to answer writes an empty Message after a turn: the client may send on', async () => {
  const s = await dialled('ping')
  const got: Buffer[] = []
  s.server.on('data', (d: Buffer) => got.push(d))
  await nextEvent(s.client, 'secure')
  assert.equal(s.server.stats.packetsOut, 2, 'Cookie and the empty Message')
  s.client.write(Buffer.from(' and more'))
  const deadline = Date.now() + 5_000
  while (Buffer.concat(got).toString() !== 'ping and more' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  assert.equal(Buffer.concat(got).toString(), 'ping and more')
  await s.done()
})
