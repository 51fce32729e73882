// The receiver's durable dedupe (storage/seen-ids.ts) and the order of one sender's outbox
// messages on the wire (issue 10). The worst case found: crossing dials under load. The receiver
// R dials the sender S while S's own dial to R still waits for R's nodeInfo; S sends on R's
// session until it is blocked (much in flight), then S's dial goes on and, before this fix, put
// frames from the head of its queue into its TCP Initiate (0-RTT) on a second session, ahead of
// the lower ones still in flight on the first. When S's session wins (S has the smaller signId),
// R closes its own with frames unread, handles the early ones, and the lower ones, resent after
// them, looked like duplicates under a "highest seq seen" record: acknowledged, never handed to
// a handler. Message loss. Two Platforms over real TCP sockets, MemoryStore.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryStore, Platform } from '../src/index.js'
import { waitUntil } from './helpers/index.js'

const TIMINGS = { reconnectMinMs: 20, reconnectMaxMs: 200, tickMs: 50 }

function node(): Platform {
  // A long lookup: S's dial waits for R's nodeInfo until the test gives it.
  return new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 30_000, stablePorts: false, outbox: { window: 50_000 }, connections: { timings: TIMINGS } })
}

async function crossingDialsUnderLoad(t: { after(fn: () => Promise<void>): void }, n: number): Promise<{ got: number[]; delivered: number }> {
  const p = node()
  const q = node()
  t.after(async () => {
    await p.close()
    await q.close()
  })
  await Promise.all([p.ready(), q.ready()])
  // S has the smaller signId: its own session wins the crossing dials on both sides.
  const [s, r] = p.identity.getSignId() < q.identity.getSignId() ? [p, q] : [q, p]
  const sId = s.identity.getSignId()
  const rId = r.identity.getSignId()
  const got: number[] = []
  r.messaging.on('public.load', (_topic, _sender, payload: { i: number }) => got.push(payload.i))
  let delivered = 0
  s.on('delivered', () => delivered++)

  const pad = 'x'.repeat(3000) // 3 KB: one fits in an Initiate; 6,000 of them block the first session
  let accepted = 0
  for (let i = 0; i < n; i++) s.messaging.send('load', rId, { i, pad }, { accepted: () => accepted++ })
  await waitUntil(() => accepted === n, 20_000, 'every message accepted into the outbox')
  // S's dial to R waits for R's nodeInfo; R dials S (it knows S's) with a message of its own.
  r.messaging.send('transports.nodeInfo', 'local', s.directory.getMyNodeInfo())
  r.messaging.send('hello', sId, 1)
  await waitUntil(() => s.connectedPeers().includes(rId), 10_000, 'R\'s session at S')
  await waitUntil(() => got.length > 0, 10_000, 'the first messages on R\'s session').catch(() => {})
  // Now S's dial goes on, while much is in flight on R's session.
  s.messaging.send('transports.nodeInfo', 'local', r.directory.getMyNodeInfo())
  await waitUntil(() => delivered === n, 30_000, `every message acknowledged (${delivered} of ${n})`)
  await waitUntil(() => got.length >= n || delivered === n, 1_000)
  return { got, delivered }
}

test('crossing dials under load: every outbox message acknowledged reached the receiver\'s handlers, once and in order', async (t) => {
  const n = 6000
  const { got } = await crossingDialsUnderLoad(t, n)
  const missing: number[] = []
  const seen = new Set(got)
  for (let i = 0; i < n; i++) if (!seen.has(i)) missing.push(i)
  assert.deepEqual(missing, [], `acknowledged but never handed to a handler: ${missing.length} (${missing.slice(0, 10).join(', ')}...)`)
  assert.equal(got.length, n, 'no duplicates')
  const outOfOrder = got.findIndex((v, i) => i > 0 && v < (got[i - 1] as number))
  assert.equal(outOfOrder, -1, `in order (first inversion at ${outOfOrder}: ${got.slice(Math.max(0, outOfOrder - 3), outOfOrder + 3).join(', ')})`)
})

