// Large realtime messages are sealed where their frame lies (send.ts gives them room, tcp-channel.ts
// builds the packet around them): over real TCP, both ways (client and server role), mixed with
// small messages that share packets and with ones too large for one packet, every message arrives
// whole and in order, and the sender's payloads are left as they were.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryStore, Platform } from '../src/index.js'
import { randomBytes } from '../src/crypto/sodium.js'
import { waitUntil } from './helpers/index.js'

function node(): Platform {
  return new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 200, stablePorts: false })
}

// Small (packed together), at and around the room threshold (16 KiB), a bulk message, the largest
// that fits one packet, and larger ones (split over packets: the ordinary path).
const SIZES = [1, 100, 16 * 1024 - 1, 16 * 1024, 65_536, 3, 131_000, 131_072, 200_000, 50, 65_536]

test('realtime messages sealed in place arrive whole and in order, both ways; the payloads sent are untouched', async (t) => {
  const a = node()
  const b = node()
  t.after(async () => {
    await a.close()
    await b.close()
  })
  await Promise.all([a.ready(), b.ready()])
  const aId = a.identity.getSignId()
  const bId = b.identity.getSignId()
  a.messaging.send('transports.nodeInfo', 'local', b.directory.getMyNodeInfo())
  const atB: Buffer[] = []
  const atA: Buffer[] = []
  b.torrenting.on('public.blob', (_t, _s, payload: Buffer) => {
    atB.push(Buffer.from(payload))
    // The reply goes back on the session a opened: b seals as the server.
    b.torrenting.send('blob', aId, payload, { realtime: true })
  })
  a.torrenting.on('public.blob', (_t, _s, payload: Buffer) => void atA.push(Buffer.from(payload)))
  // A session first, so that realtime messages go now.
  await new Promise<void>((resolve, reject) => a.messaging.send('hello', bId, 0, { realtime: true, callback: (err) => (err ? reject(err) : resolve()) }))
  const sent = SIZES.flatMap((n) => [randomBytes(n), randomBytes(n)])
  const copies = sent.map((p) => Buffer.from(p))
  let acked = 0
  for (const p of sent) a.torrenting.send('blob', bId, p, { realtime: true, callback: (err) => (err ? assert.fail(err) : acked++) })
  await waitUntil(() => atA.length === sent.length, 10_000, 'every echo back at a')
  assert.equal(acked, sent.length)
  for (let i = 0; i < sent.length; i++) {
    assert.ok((atB[i] as Buffer).equals(copies[i] as Buffer), `message ${i} (${copies[i]?.length} bytes) reached b whole, in order`)
    assert.ok((atA[i] as Buffer).equals(copies[i] as Buffer), `echo ${i} (${copies[i]?.length} bytes) reached a whole, in order`)
    assert.ok((sent[i] as Buffer).equals(copies[i] as Buffer), `payload ${i} was not touched`)
  }
})
