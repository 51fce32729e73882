// The outbox's fast path (connections/delivery.ts): a non-realtime send to a peer whose earlier
// messages are all in memory joins its queue at once and goes out while storage writes it; it is
// not read back from storage. Sends that wait their turn in storage (window full, peer offline,
// a backlog) keep the order per destination with those that go straight out.
import { test } from 'node:test'
import net from 'node:net'
import assert from 'node:assert/strict'
import { Platform, type PlatformOptions } from '../src/index.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import type { BatchOp, RangeOptions, StoreEntry } from '../src/storage/store.js'
import { waitUntil } from './helpers/index.js'

const TIMINGS = { reconnectMinMs: 20, reconnectMaxMs: 200, tickMs: 50 }

/** A memory store with a batch and a range, counting the reads of outbox messages. */
class CountingStore extends MemoryStore {
  outboxReads = 0
  outboxPuts = 0
  failBatches = false
  async keys(prefix: string): Promise<string[]> {
    const keys: string[] = []
    for await (const e of super.createReadStream() as AsyncIterable<StoreEntry>) if (e.key.startsWith(prefix)) keys.push(e.key)
    return keys
  }

  override async batch(ops: BatchOp[]): Promise<void> {
    await Promise.resolve()
    if (this.failBatches) throw new Error('disk full (test)')
    for (const op of ops) if (op.type === 'put' && op.key.startsWith('outbox.m.')) this.outboxPuts++
    for (const op of ops) {
      if (op.type === 'put') await super.put(op.key, op.value as string)
      else await super.del(op.key)
    }
  }

  override async range(options: RangeOptions): Promise<StoreEntry[]> {
    if (options.gte.startsWith('outbox.m.')) this.outboxReads++
    const out: StoreEntry[] = []
    const keys: string[] = []
    for await (const e of super.createReadStream() as AsyncIterable<StoreEntry>) if (e.key >= options.gte && e.key < options.lt) keys.push(e.key)
    keys.sort()
    for (const key of keys) {
      if (options.limit !== undefined && out.length >= options.limit) break
      out.push({ key, value: options.values === false ? '' : ((await this.get(key)) as string) })
    }
    return out
  }
}

function node(storage: MemoryStore, extra: PlatformOptions = {}): Platform {
  return new Platform({ storage, tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 200, connections: { timings: TIMINGS }, ...extra })
}

async function pair(t: { after: (fn: () => Promise<unknown>) => void }, aStore: MemoryStore, extra: PlatformOptions = {}): Promise<{ a: Platform; b: Platform; bId: string }> {
  const a = node(aStore, extra)
  const b = node(new MemoryStore())
  t.after(() => Promise.all([a.close(), b.close()]))
  await Promise.all([a.ready(), b.ready()])
  a.messaging.send('transports.nodeInfo', 'local', b.directory.getMyNodeInfo())
  return { a, b, bId: b.identity.getSignId() }
}

test('a send to a connected peer goes out without reading the outbox back, and leaves storage once acknowledged', async (t) => {
  const store = new CountingStore()
  const { a, b, bId } = await pair(t, store)
  const got: number[] = []
  b.messaging.on('public.fast', (_t, _s, p: { i: number }) => got.push(p.i))
  await new Promise<void>((resolve, reject) => a.messaging.send('fast', bId, { i: -1 }, { callback: (err) => (err ? reject(err) : resolve()) }))
  got.length = 0
  store.outboxReads = 0
  const N = 300
  const results: Array<Error | null> = []
  for (let i = 0; i < N; i++) a.messaging.send('fast', bId, { i }, { callback: (err) => results.push(err) })
  await waitUntil(() => results.length === N, 10_000, 'every callback')
  assert.ok(results.every((e) => e === null), 'all delivered')
  assert.deepEqual(got, [...Array(N).keys()], 'once each, in order')
  assert.equal(store.outboxReads, 0, 'no message was read back from storage to be sent')
  await waitUntil(async () => (await store.keys('outbox.m.')).length === 0, 5_000, 'every message removed from storage')
})

test('order per destination holds across the fast path and the storage path (small window, peer offline, then sends while it drains)', async (t) => {
  const store = new CountingStore()
  const a = node(store, { outbox: { window: 8 } })
  t.after(() => a.close())
  let b = node(new MemoryStore())
  await Promise.all([a.ready(), b.ready()])
  const bStore = new MemoryStore()
  // B's identity and port must survive its restart: start the real B on its own store after A queues.
  await b.close()
  b = node(bStore)
  t.after(() => b.close())
  await b.ready()
  const bId = b.identity.getSignId()
  const info = b.directory.getMyNodeInfo()
  await b.close()
  const got: number[] = []
  let i = 0
  const results: Array<Error | null> = []
  const send = (n: number): void => {
    for (const end = i + n; i < end; ) {
      a.messaging.send('order', bId, { i: i++ }, {
        callback: (err) => {
          results.push(err)
          if (i < 400) send(1) // one more as each is delivered, while the backlog drains
        }
      })
    }
  }
  send(200) // B is down: 8 go to memory, the rest wait in storage
  a.messaging.send('transports.nodeInfo', 'local', info)
  b = node(bStore)
  t.after(() => b.close())
  b.messaging.on('public.order', (_t, _s, p: { i: number }) => {
    got.push(p.i)
  })
  await b.ready()
  await waitUntil(() => results.length === 400, 20_000, `every callback (${results.length})`)
  assert.ok(results.every((e) => e === null), 'all delivered')
  assert.deepEqual(got, [...Array(400).keys()], 'once each, in send order')
  assert.ok(store.outboxReads > 0, 'the messages that waited were read from storage')
  await waitUntil(async () => (await a.outbox.list()).length === 0, 5_000, 'the outbox empties')
  // Caught up again: later sends go straight out.
  store.outboxReads = 0
  const more: Array<Error | null> = []
  for (let k = 0; k < 6; k++) a.messaging.send('order', bId, { i: 400 + k }, { callback: (err) => more.push(err) })
  await waitUntil(() => more.length === 6, 5_000, 'the later sends')
  assert.deepEqual(got.slice(400), [400, 401, 402, 403, 404, 405])
  assert.equal(store.outboxReads, 0, 'once the backlog is gone, sends are not read back from storage')
})

test('a write that fails after the message went out: its callback hears the storage error once, and the node keeps working', async (t) => {
  const store = new CountingStore()
  const { a, b, bId } = await pair(t, store, { outbox: { maxMessages: 10, writeBehindMs: 0 } }) // written at once: the write fails before the ACK
  const got: number[] = []
  b.messaging.on('public.fail', (_t, _s, p: { i: number }) => got.push(p.i))
  await new Promise<void>((resolve, reject) => a.messaging.send('fail', bId, { i: -1 }, { callback: (err) => (err ? reject(err) : resolve()) }))
  await waitUntil(async () => (await store.keys('outbox.m.')).length === 0, 5_000, 'the first message removed from storage')
  store.failBatches = true
  const results: Array<Error | null> = []
  for (let i = 0; i < 5; i++) {
    a.messaging.send('fail', bId, { i }, {
      callback: (err) => {
        // Storage works again before their ACKs come back: nothing of theirs may be removed then.
        if (results.push(err) === 5) store.failBatches = false
      }
    })
  }
  await waitUntil(() => results.length === 5, 5_000, 'the callbacks')
  await new Promise((r) => setTimeout(r, 200))
  assert.equal(results.length, 5, 'each callback once')
  assert.ok(results.every((e) => e instanceof Error && /disk full/.test(e.message)), 'they hear the storage error')
  const after: Array<Error | null> = []
  a.messaging.send('fail', bId, { i: 99 }, { callback: (err) => after.push(err) })
  await waitUntil(() => after.length === 1, 5_000, 'a later send')
  assert.equal(after[0], null)
  assert.ok(got.includes(99))
  // The outbox counts what it holds, nothing else: with the peer down, exactly 10 more fit.
  await waitUntil(async () => (await store.keys('outbox.m.')).length === 0, 5_000, 'the outbox empty')
  await b.close()
  const full: Array<Error | null> = []
  for (let i = 0; i < 12; i++) a.messaging.send('fail', bId, { i }, { callback: (err) => full.push(err) })
  await waitUntil(() => full.length === 2, 5_000, 'the refusals')
  assert.deepEqual(full.map((e) => (e as { code?: string }).code), ['ERR_QUEUE_FULL', 'ERR_QUEUE_FULL'])
})

/** What a crash leaves: a copy of the store as written so far (the running node never closes it). */
async function crashCopy(store: MemoryStore): Promise<MemoryStore> {
  const copy = new MemoryStore()
  for await (const e of store.createReadStream() as AsyncIterable<StoreEntry>) await copy.put(e.key, e.value)
  return copy
}

test('ids are never reused after a crash, even for messages delivered before their write (write-behind)', async (t) => {
  const store = new MemoryStore()
  const a = node(store)
  const b = node(new MemoryStore())
  t.after(() => Promise.all([a.close(), b.close()]))
  await Promise.all([a.ready(), b.ready()])
  const info = b.directory.getMyNodeInfo()
  a.messaging.send('transports.nodeInfo', 'local', info)
  const bId = b.identity.getSignId()
  const got: number[] = []
  b.messaging.on('public.crash', (_t, _s, p: { i: number }) => got.push(p.i))
  const first: Array<Error | null> = []
  for (let i = 0; i < 20; i++) a.messaging.send('crash', bId, { i }, { callback: (err) => first.push(err) })
  await waitUntil(() => first.length === 20, 5_000, 'the first 20 delivered')
  // The crash: what storage holds now is all a restarted A has (most of the 20 were never written).
  const left = await crashCopy(store)
  await a.close()
  const a2 = node(left)
  t.after(() => a2.close())
  await a2.ready()
  assert.equal(a2.identity.getSignId(), a.identity.getSignId(), 'the same node after the crash')
  a2.messaging.send('transports.nodeInfo', 'local', info)
  const second: Array<Error | null> = []
  for (let i = 20; i < 40; i++) a2.messaging.send('crash', bId, { i }, { callback: (err) => second.push(err) })
  await waitUntil(() => second.length === 20, 10_000, 'the next 20')
  assert.ok(second.every((e) => e === null))
  assert.deepEqual(got, [...Array(40).keys()], 'every message after the crash reaches the handlers (none dropped as a duplicate)')
})

test('write-behind: a message its peer acknowledges within the delay is never written; one still waiting is written at close and sent after the restart', async (t) => {
  const store = new CountingStore()
  const { a, b, bId } = await pair(t, store, { outbox: { writeBehindMs: 60_000 } })
  const got: number[] = []
  b.messaging.on('public.wb', (_t, _s, p: { i: number }) => got.push(p.i))
  const results: Array<Error | null> = []
  const accepted: string[] = []
  for (let i = 0; i < 50; i++) a.messaging.send('wb', bId, { i }, { callback: (err) => results.push(err), accepted: (id) => accepted.push(id) })
  await waitUntil(() => results.length === 50 && accepted.length === 50, 5_000, 'delivered and accepted')
  assert.ok(results.every((e) => e === null))
  assert.equal(store.outboxPuts, 0, 'none of them was written to storage')
  assert.deepEqual(await a.outbox.list(), [])
  // A message that waits (its peer is gone) is written when the platform closes, and kept.
  await b.close()
  const late: string[] = []
  a.messaging.send('wb', bId, { i: 50 }, { accepted: (id) => late.push(id) })
  await a.close()
  assert.equal(late.length, 1, 'accepted once written at close')
  assert.equal(store.outboxPuts, 1)
  const a2 = node(store)
  t.after(() => a2.close())
  await a2.ready()
  assert.deepEqual((await a2.outbox.list()).map((m) => m.id), late, 'it waits in the outbox after the restart')
})

test('a reply to a durable message carries its ACK: one write per direction per round trip, not two', async (t) => {
  const { a, b, bId } = await pair(t, new MemoryStore())
  const aId = a.identity.getSignId()
  b.messaging.on('public.ping', (_t, _s, p: { i: number }) => b.messaging.send('pong', aId, p))
  const echo = (i: number): Promise<void> =>
    new Promise((resolve) => {
      a.messaging.once('public.pong', () => resolve())
      a.messaging.send('ping', bId, { i })
    })
  await echo(-1) // the session is up
  const proto = net.Socket.prototype as unknown as { _writev: (...args: unknown[]) => unknown; _write: (...args: unknown[]) => unknown }
  const { _writev, _write } = proto
  let writes = 0
  proto._writev = function (this: unknown, ...args: unknown[]) {
    writes++
    return _writev.apply(this, args)
  }
  proto._write = function (this: unknown, ...args: unknown[]) {
    writes++
    return _write.apply(this, args)
  }
  t.after(() => Object.assign(proto, { _writev, _write }))
  const N = 200
  for (let i = 0; i < N; i++) await echo(i)
  Object.assign(proto, { _writev, _write })
  assert.ok(writes <= N * 2 + 10, `${writes} socket writes for ${N} round trips (the ACKs must ride with the replies)`)
})

test('disconnect() right after a durable message is handled sends its ACK first: the peer does not keep it pending', async (t) => {
  const { a, b, bId } = await pair(t, new MemoryStore())
  const aId = a.identity.getSignId()
  b.messaging.on('public.ask', (_t, _s, p: { i: number }) => b.messaging.send('answer', aId, p))
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve) => {
      a.messaging.once('public.answer', () => {
        // The answer's ACK waits for its id to be recorded; disconnect must not drop it.
        void a.disconnect(bId).then(resolve)
      })
      a.messaging.send('ask', bId, { i })
    })
    await waitUntil(async () => (await b.outbox.list()).length === 0, 2_000, `answer ${i} acknowledged before the session closed`)
  }
})

/** A memory store whose batches (the receiver's seen-id records) take `delayMs` to be written. */
class SlowBatchStore extends MemoryStore {
  constructor(private readonly delayMs: number) {
    super()
  }

  override async batch(ops: BatchOp[]): Promise<void> {
    await new Promise((r) => setTimeout(r, this.delayMs))
    for (const op of ops) {
      if (op.type === 'put') await super.put(op.key, op.value as string)
      else await super.del(op.key)
    }
  }
}

test('a message sent at once to a connected peer waits out a longer write-behind: ACKs that take 8 ms still find it unwritten', async (t) => {
  const store = new CountingStore()
  const a = node(store)
  const b = node(new SlowBatchStore(8)) // each ACK waits for an 8 ms record write (more than the 5 ms of writeBehindMs)
  t.after(() => Promise.all([a.close(), b.close()]))
  await Promise.all([a.ready(), b.ready()])
  a.messaging.send('transports.nodeInfo', 'local', b.directory.getMyNodeInfo())
  const bId = b.identity.getSignId()
  const send = (i: number): Promise<void> =>
    new Promise<void>((resolve, reject) => a.messaging.send('slow-ack', bId, { i }, { callback: (err) => (err ? reject(err) : resolve()) }))
  await send(-1) // the session is up
  store.outboxPuts = 0
  const started = Date.now()
  // A message whose ACK took longer than its 25 ms write-behind may be written (a loaded machine
  // stalls a few); one acknowledged sooner must not be. With the 5 ms of other messages all 20 are.
  let late = 0
  for (let i = 0; i < 20; i++) {
    const sent = performance.now()
    await send(i)
    if (performance.now() - sent >= 20) late++
  }
  const perMessage = (Date.now() - started) / 20
  assert.ok(perMessage >= 7, `each ACK took ${perMessage.toFixed(1)} ms (the store's delay)`)
  assert.ok(late <= 15, `${late} of 20 ACKs took 20 ms or more: the machine is too loaded for this test to tell`)
  assert.ok(store.outboxPuts <= late, `${store.outboxPuts} of 20 written, only ${late} acknowledged late: the others were acknowledged within their write-behind`)
})
