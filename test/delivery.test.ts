// Issue 10: the persistent outbox end to end. Restarts with messages waiting (no discovery
// service), durable ids given to handlers, the receiver's persistent record of ids (no second
// hand-over after its restart, ACK only once recorded), expiry by an injected clock, cancel,
// list, and the delivered/failed events.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Platform, type Message, type PlatformOptions } from '../src/index.js'
import { MemoryStore } from '../src/storage/memory-store.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { Delivery } from '../src/connections/delivery.js'
import { encodeData, decodeFrame, type DataFrame } from '../src/connections/frames.js'
import { Peer } from '../src/connections/peer.js'
import type { Channel } from '../src/connections/channel.js'
import { PeerTable } from '../src/connections/limits.js'
import { emptyCounts } from '../src/connections/counters.js'
import { silentLogger } from '../src/logger.js'
import { delay, randomSignId, tempDir, waitUntil } from './helpers/index.js'

const TIMINGS = { reconnectMinMs: 20, reconnectMaxMs: 200, tickMs: 50 }

function node(dataDir: string, extra: PlatformOptions = {}): Platform {
  return new Platform({ dataDir, tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 200, ...extra, connections: { timings: TIMINGS } })
}

test('restart: messages wait in the sender\'s outbox across its restart; the receiver, restarted later, gets them all in order, with no discovery service', async (t) => {
  const dirA = tempDir(t)
  const dirB = tempDir(t)
  let a = node(dirA)
  let b = node(dirB)
  await Promise.all([a.ready(), b.ready()])
  const bId = b.identity.getSignId()
  // The only time A learns where B is: B's nodeInfo, given once (as a discovery service would).
  a.messaging.send('transports.nodeInfo', 'local', b.directory.getMyNodeInfo())
  await b.close()
  const N = 50
  const ids: string[] = []
  const callbacks: Array<Error | null> = []
  for (let i = 0; i < N; i++) a.messaging.send('chat', bId, { i }, { accepted: (id) => ids.push(id), callback: (err) => callbacks.push(err) })
  await waitUntil(() => ids.length === N, 5_000, 'every message accepted into the outbox')
  // A dial to B (down) was tried: B's nodeInfo is stored while messages wait for it.
  await delay(100)
  assert.equal((await a.outbox.list()).length, N)
  await a.close()
  assert.equal(callbacks.length, N)
  assert.ok(callbacks.every((e) => (e as { code?: string } | null)?.code === 'ERR_CLOSED'), 'callbacks of sends before the restart hear ERR_CLOSED')

  a = node(dirA) // no nodeInfo given: it has only what it stored
  const delivered: string[] = []
  a.on('delivered', (info: { id: string }) => delivered.push(info.id))
  await a.ready()
  const pending = await a.outbox.list()
  assert.deepEqual(pending.map((p) => p.id), ids, 'the same messages, with the same ids, in order')
  assert.ok(pending.every((p) => p.destination === bId && p.topic === 'chat' && p.size > 0 && p.age >= 0 && p.expiresAt > Date.now()))
  await delay(300) // A dials B (down) a few times meanwhile

  b = node(dirB) // the same ports (stable ports)
  const got: Array<{ i: number; id: string | undefined }> = []
  const raw: Array<string | undefined> = []
  b.messaging.on('public.chat', (_topic, _sender, payload: { i: number }, id) => got.push({ i: payload.i, id }))
  b.on('message', (m: Message) => m.sender !== 'local' && raw.push(m.id))
  await b.ready()
  await waitUntil(() => delivered.length === N, 20_000, 'every message delivered after both restarts')
  t.after(() => Promise.all([a.close(), b.close()]))
  assert.deepEqual(got.map((g) => g.i), [...Array(N).keys()], 'all, once, in order')
  assert.deepEqual(got.map((g) => g.id), ids, 'the handler gets the id as its 4th argument')
  assert.deepEqual(raw, ids, 'message.id on raw listeners')
  // Each told once its removal is written (those writes may end in any order).
  assert.deepEqual([...delivered].sort(), [...ids].sort(), 'delivered events carry the ids')
  assert.deepEqual(await a.outbox.list(), [], 'removed from the outbox once acknowledged')
})

test('expiry by an injected clock: ERR_EXPIRED to the callback and as a failed event, and the message is removed', async (t) => {
  let now = Date.now()
  const a = new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 100, outbox: { now: () => now }, connections: { timings: TIMINGS } })
  t.after(() => a.close())
  await a.ready()
  const far = randomSignId()
  const failed: Array<{ id: string; destination: string; topic?: string; error: Error }> = []
  a.on('failed', (f: (typeof failed)[number]) => failed.push(f))
  let id = ''
  let result: Error | null | undefined
  a.messaging.send('late', far, 1, { expireAfter: 60_000, accepted: (i) => (id = i), callback: (err) => (result = err) })
  await waitUntil(() => id !== '', 2_000, 'accepted')
  const [entry] = await a.outbox.list()
  assert.equal(entry?.expiresAt, now + 60_000)
  now += 30_000
  assert.equal(await a.outbox.expire(), 0, 'not yet')
  assert.equal((await a.outbox.list())[0]?.age, 30_000, 'age by the same clock')
  now += 30_001
  assert.equal(await a.outbox.expire(), 1)
  await waitUntil(() => result !== undefined, 2_000, 'the callback')
  assert.equal((result as { code?: string }).code, 'ERR_EXPIRED')
  assert.equal(failed.length, 1)
  assert.equal(failed[0]?.id, id)
  assert.equal(failed[0]?.destination, far)
  assert.equal((failed[0]?.error as { code?: string }).code, 'ERR_EXPIRED')
  assert.deepEqual(await a.outbox.list(), [])
})

test('cancel: a pending message is removed, its callback and a failed event say ERR_CANCELLED', async (t) => {
  const a = new Platform({ storage: new MemoryStore(), tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 100, connections: { timings: TIMINGS } })
  t.after(() => a.close())
  await a.ready()
  const far = randomSignId()
  const ids: string[] = []
  const results: Array<Error | null> = []
  for (let i = 0; i < 3; i++) a.messaging.send('t', far, i, { accepted: (id) => ids.push(id), callback: (err) => results.push(err) })
  await waitUntil(() => ids.length === 3, 2_000, 'accepted')
  const failed = new Promise<{ id: string; error: Error }>((resolve) => a.once('failed', resolve))
  assert.equal(await a.outbox.cancel(far, ids[1] as string), true)
  assert.equal(await a.outbox.cancel(far, ids[1] as string), false, 'once')
  assert.equal(await a.outbox.cancel(randomSignId(), ids[0] as string), false, 'another destination')
  const f = await failed
  assert.equal(f.id, ids[1])
  assert.equal((f.error as { code?: string }).code, 'ERR_CANCELLED')
  await waitUntil(() => results.length === 1, 2_000, 'the cancelled one\'s callback')
  assert.equal((results[0] as { code?: string }).code, 'ERR_CANCELLED')
  assert.deepEqual((await a.outbox.list()).map((m) => m.id), [ids[0], ids[2]])
})

/** A Delivery on `storage` whose host records what it is handed. */
async function receiverOn(storage: PlatformStorage, onWrite: () => void = () => {}): Promise<{ delivery: Delivery; handed: Message[]; counts: ReturnType<typeof emptyCounts> }> {
  const handed: Message[] = []
  const host = { deliver: (m: Message) => handed.push(m), scopeOf: () => 'public' as const, emit: () => true }
  const limits = {
    maxFrameBytes: 1 << 20,
    maxQueuedMessages: 10,
    maxQueuedBytes: 1 << 20,
    highWaterBytes: 1 << 19,
    maxPeers: 10,
    maxStrangerPeers: 10,
    strangerMaxFrameBytes: 1 << 20,
    strangerFrameDeadlineMs: 10_000,
    maxHeldAckIds: 1024,
    maxOutgoingBytes: 1 << 22
  }
  const peers = new Map<string, Peer>()
  const ctx = {
    host,
    identity: {} as never,
    logger: silentLogger,
    timings: {} as never,
    limits,
    peers,
    table: new PeerTable(peers, host, limits, () => {}),
    counts: emptyCounts(),
    started: true,
    closed: false
  }
  const delivery = new Delivery(ctx, { dialling: { ensureChannel: () => {} }, flushing: { flush: () => {}, scheduleWrite: onWrite, drainWhen: () => {} } }, storage)
  await delivery.open()
  return { delivery, handed, counts: ctx.counts }
}

test('the receiver hands a durable message over once across its restart, and ACKs only once the id is recorded in storage', async () => {
  const store = new MemoryStore()
  const storage = new PlatformStorage(store)
  await storage.open()
  const sender = new Peer(randomSignId())
  const id = Buffer.alloc(16)
  Buffer.from('0123456789abcdef', 'hex').copy(id)
  id.writeBigUInt64BE(7n, 8)
  const frame = decodeFrame(encodeData({ id, protocol: 'ms', topic: 't', expiresAt: Date.now() + 60_000, payload: '"x"', durable: true }).subarray(4)) as DataFrame
  // ACKs: queued on the channel the frame came in on once recorded (then the write is asked
  // for), or due at once (receive() says true: a resend with nothing being recorded).
  const via = { state: 'open' } as unknown as Channel
  let dueAtOnce = 0
  const acked = (): number => dueAtOnce + (sender.pendingAcks.get(via)?.length ?? 0)
  const receive = (d: Delivery, f: DataFrame): void => void (d.receive(sender, f, via) && dueAtOnce++)
  let recordedAtAck: string | undefined
  const first = await receiverOn(storage, () => {
    if (acked() > 0) void storage.get(`seen.${sender.signId}`).then((v) => (recordedAtAck ??= v))
  })
  receive(first.delivery, frame)
  assert.equal(first.handed.length, 1)
  assert.equal(first.handed[0]?.id, '0123456789abcdef-7')
  assert.equal(acked(), 0, 'no ACK before the record is written')
  await waitUntil(() => acked() === 1 && recordedAtAck !== undefined, 2_000, 'the ACK')
  assert.match(recordedAtAck as string, /"0123456789abcdef":\[7,/)
  assert.deepEqual([...(sender.pendingAcks.get(via) ?? [])].map((x) => Buffer.from(x).toString('hex')), [id.toString('hex')], 'the ACK carries the id')
  // A resend while the first is being recorded, then after a restart: ACKed, not handed over.
  receive(first.delivery, frame)
  await waitUntil(() => acked() === 2, 2_000, 'the duplicate ACKed')
  await first.delivery.close()
  const second = await receiverOn(storage)
  receive(second.delivery, frame)
  await waitUntil(() => acked() === 3, 2_000, 'the resend after a restart ACKed')
  assert.equal(second.handed.length, 0, 'not handed over again after the restart')
  // An older seq of the same stream is a resend too; a newer one is new.
  id.writeBigUInt64BE(8n, 8)
  const next = decodeFrame(encodeData({ id, protocol: 'ms', topic: 't', payload: '"y"', durable: true }).subarray(4)) as DataFrame
  receive(second.delivery, next)
  assert.equal(second.handed.length, 1)
  await second.delivery.close()
  await storage.close()
})

test('the receiver holds at most maxHeldAckIds durable ids of a peer waiting for their record: past it, that channel closes', async () => {
  // A store whose writes wait until released: the records stay pending.
  let release: () => void = () => {}
  let gate: Promise<void> | undefined
  class SlowStore extends MemoryStore {
    override put(key: string, value: string, callback?: (err?: Error | null) => void): Promise<void> {
      const done = (gate ?? Promise.resolve()).then(() => super.put(key, value))
      if (callback) done.then(() => callback(null), callback)
      return done
    }
  }
  const storage = new PlatformStorage(new SlowStore() as MemoryStore)
  await storage.open()
  const sender = new Peer(randomSignId())
  const receiver = await receiverOn(storage)
  gate = new Promise<void>((r) => (release = r)) // writes from now on wait
  let closedWith: Error | undefined
  const via = { state: 'open', remote: 'x', close: async (err?: Error) => void ((closedWith = err), (via.state = 'closed')) }
  const stream = Buffer.from('0123456789abcdef', 'hex')
  const frameAt = (seq: number): DataFrame => {
    const id = Buffer.alloc(16)
    stream.copy(id)
    id.writeBigUInt64BE(BigInt(seq), 8)
    return decodeFrame(encodeData({ id, protocol: 'ms', topic: 't', payload: '"x"', durable: true }).subarray(4)) as DataFrame
  }
  const bound = 1024 // receiverOn's maxHeldAckIds
  for (let seq = 1; seq <= bound; seq++) receiver.delivery.receive(sender, frameAt(seq), via as unknown as Channel)
  assert.equal(receiver.handed.length, bound)
  assert.equal(via.state, 'open', 'within the bound')
  receiver.delivery.receive(sender, frameAt(bound + 1), via as unknown as Channel)
  assert.equal(receiver.handed.length, bound, 'past the bound: not handed over (no ACK either: it is sent again)')
  assert.equal(via.state, 'closed')
  assert.match(String(closedWith?.message), /recorded/)
  assert.equal(receiver.counts.notReading, 1)
  release()
  await receiver.delivery.recorded(sender.signId)
  assert.equal(sender.recording, 0)
  assert.equal(sender.awaitingRecord, 0)
  await receiver.delivery.close()
  await storage.close()
})
