// The `drain` contract (issue 10): every `false` from send() is followed by a `drain` for that
// destination once there is room again, whatever said false: the queue's high-water mark, the
// 10,000 unacknowledged messages of a realtime peer (ERR_QUEUE_FULL), the outbox's bounds, or a
// realtime message refused before the platform is ready. A sender that waits for `drain` on every
// false never hangs. Two Platforms over real TCP sockets, MemoryStore.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { MemoryStore, Platform, type PlatformOptions } from '../src/index.js'
import { randomSignId, waitUntil } from './helpers/index.js'

const TIMINGS = { reconnectMinMs: 20, reconnectMaxMs: 200, tickMs: 50 }

function node(extra: PlatformOptions = {}): Platform {
  return new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 200, stablePorts: false, ...extra, connections: { timings: TIMINGS, ...extra.connections } })
}

/** Waits for `drain` for `signId`; rejects after `ms` (the old code never sent it). */
async function drainOf(p: Platform, signId: string, ms: number): Promise<void> {
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(), ms)
  try {
    for (;;) {
      const [id] = (await once(p, 'drain', { signal: ac.signal })) as [string]
      if (id === signId) return
    }
  } catch (err) {
    if (ac.signal.aborted) throw new Error(`no drain for ${signId.slice(0, 12)} within ${ms} ms after send() said false`)
    throw err
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Sends messages 0..n-1 as a careful app does: on false it waits for `drain`; a message refused
 * (its callback says ERR_QUEUE_FULL) is sent again later. Resolves, with the count of falses and
 * refusals, once every message was acknowledged (then the receiver's handlers had each).
 */
async function sendAll(a: Platform, to: string, n: number, options: { realtime: boolean }): Promise<{ falses: number; refused: number }> {
  const todo: number[] = []
  for (let i = n - 1; i >= 0; i--) todo.push(i)
  let falses = 0
  let refused = 0
  const done = new Set<number>()
  while (done.size < n) {
    const i = todo.pop()
    if (i === undefined) {
      await new Promise((r) => setTimeout(r, 5)) // everything sent: wait for the last callbacks
      continue
    }
    const ok = a.messaging.send('load', to, { i }, {
      realtime: options.realtime,
      callback: (err) => {
        if (!err) return void done.add(i)
        assert.equal((err as { code?: string }).code, 'ERR_QUEUE_FULL', `message ${i}: ${String(err)}`)
        refused++
        todo.push(i)
      }
    })
    if (!ok) {
      falses++
      await drainOf(a, to, 10_000)
    }
  }
  return { falses, refused }
}

async function pair(t: { after(fn: () => Promise<void>): void }, extra: PlatformOptions = {}): Promise<{ a: Platform; b: Platform; bId: string; received: Set<number> }> {
  const a = node(extra)
  const b = node()
  t.after(async () => {
    await a.close()
    await b.close()
  })
  await Promise.all([a.ready(), b.ready()])
  const bId = b.identity.getSignId()
  a.messaging.send('transports.nodeInfo', 'local', b.directory.getMyNodeInfo())
  const received = new Set<number>()
  b.messaging.on('public.load', (_topic, _sender, payload: { i: number }) => {
    received.add(payload.i)
  })
  return { a, b, bId, received }
}

test('realtime: a sender that waits for drain on every false finishes 30,000 messages (10,000 unacknowledged make send() refuse with ERR_QUEUE_FULL, and drain follows)', async (t) => {
  const { a, bId, received } = await pair(t)
  // A session first, so that realtime messages go now.
  await new Promise<void>((resolve, reject) => a.messaging.send('hello', bId, 0, { realtime: true, callback: (err) => (err ? reject(err) : resolve()) }))
  const N = 30_000
  const { falses, refused } = await sendAll(a, bId, N, { realtime: true })
  assert.equal(received.size, N)
  // Small messages: 4 MiB high water is never reached, so every false here was the 10,000 bound.
  assert.ok(falses > 0 && refused > 0, `the 10,000 bound was reached (falses ${falses}, refused ${refused})`)
})

test('outbox: a sender that waits for drain on every false finishes with the outbox bound reached (ERR_QUEUE_FULL refusals are followed by drain)', async (t) => {
  const { a, bId, received } = await pair(t, { outbox: { maxMessagesPerDestination: 300 } })
  const N = 3_000
  const { falses, refused } = await sendAll(a, bId, N, { realtime: false })
  assert.equal(received.size, N)
  assert.ok(falses > 0 && refused > 0, `the outbox bound was reached (falses ${falses}, refused ${refused})`)
})

test('realtime before ready: the refusal (ERR_UNREACHABLE) says false, and drain follows once the platform is ready', async (t) => {
  const { b, bId } = await pair(t)
  const c = node()
  t.after(() => c.close())
  const errors: Array<string | undefined> = []
  // Sent at once after the constructor: the platform is not ready, the peer not connected.
  const ok = c.messaging.send('early', bId, 1, { realtime: true, callback: (err) => errors.push((err as { code?: string } | null)?.code) })
  assert.equal(ok, false)
  await drainOf(c, bId, 5_000)
  assert.ok(c.isReady(), 'drain came once the platform was ready')
  await waitUntil(() => errors.length === 1)
  assert.deepEqual(errors, ['ERR_UNREACHABLE'])
  void b
})

test('peer table full: the refusal (ERR_QUEUE_FULL) says false, drain follows on a tick, and a send after it is taken once a peer made room', async (t) => {
  const c = node({ connections: { maxPeers: 2, timings: { ...TIMINGS, realtimeWaitMs: 100 } } })
  t.after(() => c.close())
  await c.ready()
  const codes: Array<string | undefined> = []
  const cb = (err: Error | null): void => void codes.push((err as { code?: string } | null)?.code)
  // Two peers nobody can reach fill the table until their realtime messages fail.
  assert.equal(c.messaging.send('x', randomSignId(), 1, { realtime: true, callback: cb }), true)
  assert.equal(c.messaging.send('x', randomSignId(), 1, { realtime: true, callback: cb }), true)
  const third = randomSignId()
  let tries = 0
  while (!c.messaging.send('x', third, 1, { realtime: true, callback: cb })) {
    tries++
    assert.ok(tries < 100, 'a send to the third peer was taken once the others failed')
    await drainOf(c, third, 5_000)
  }
  assert.ok(tries >= 1, 'the table was full at first')
  assert.equal(codes[0], 'ERR_QUEUE_FULL')
})

test('outbox back-pressure: a sender that waits for drain on every false is paced by a connected peer far below the outbox bound, so none of its sends is refused (UDP, slower than the appends)', async (t) => {
  const bound = 8 * 1024 * 1024
  const udp = { tcp: false as const, udp: { host: '127.0.0.1' } }
  const a = node({ ...udp, outbox: { maxBytesPerDestination: bound } })
  const b = node(udp)
  t.after(() => Promise.all([a.close(), b.close()]))
  await Promise.all([a.ready(), b.ready()])
  a.messaging.send('transports.nodeInfo', 'local', b.directory.getMyNodeInfo())
  const bId = b.identity.getSignId()
  const got: number[] = []
  b.torrenting.on('public.bulk', (_t, _s, p: Buffer) => got.push(p.readUInt32BE(0)))
  await new Promise<void>((resolve, reject) => a.messaging.send('hello', bId, {}, { callback: (err) => (err ? reject(err) : resolve()) }))
  const N = 400 // 64 KiB each: three times the bound
  const payload = Buffer.alloc(64 * 1024, 7)
  const results: Array<Error | null> = []
  let falses = 0
  for (let i = 0; i < N; i++) {
    const m = Buffer.from(payload)
    m.writeUInt32BE(i, 0)
    if (!a.torrenting.send('bulk', bId, m, { callback: (err) => results.push(err) })) {
      falses++
      await drainOf(a, bId, 20_000)
    }
  }
  await waitUntil(() => results.length === N, 30_000, `every callback (${results.length})`)
  assert.deepEqual(results.filter((e) => e !== null).map((e) => (e as { code?: string }).code), [], 'none refused')
  assert.ok(falses > 0, 'send() said false while the peer was behind')
  assert.deepEqual(got, [...Array(N).keys()], 'each once, in order')
})
