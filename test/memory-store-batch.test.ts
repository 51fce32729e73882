// MemoryStore's batch: all or none, applied at once; a subclass that changes put or del keeps its
// writes going through them (tests' slow or failing stores rely on it). Its range: read from the
// map at once, the same entries as the read-stream fallback.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryStore } from '../src/index.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { SeenIds } from '../src/storage/seen-ids.js'
import { randomSignId } from './helpers/index.js'

test('memory store: a batch applies every write at once, or none when one is bad', async () => {
  const store = new MemoryStore()
  assert.equal(typeof store.batch, 'function')
  await store.put('gone', 'x')
  await store.batch?.([
    { type: 'put', key: 'a', value: '1' },
    { type: 'put', key: 'b', value: '2' },
    { type: 'del', key: 'gone' }
  ])
  assert.equal(store.getSync('a'), '1')
  assert.equal(store.getSync('b'), '2')
  assert.equal(store.getSync('gone'), null)
  // A bad op: the batch rejects and nothing of it is applied.
  await assert.rejects(
    store.batch?.([
      { type: 'put', key: 'c', value: '3' },
      { type: 'put', key: '', value: '4' }
    ]) ?? Promise.resolve(),
    (err: Error & { code?: string }) => err.code === 'ERR_STORAGE_BAD_KEY'
  )
  assert.equal(store.getSync('c'), null)
  // Through the platform's storage too: one atomic batch.
  const storage = new PlatformStorage(store)
  assert.equal(storage.atomicBatch, true)
  await storage.batch([{ type: 'put', key: 'd', value: '5' }])
  assert.equal(store.getSync('d'), '5')
})

test('memory store: a subclass that changes put gets its batches written through its put', async () => {
  const seen: string[] = []
  class Counting extends MemoryStore {
    override put(key: string, value: string, callback?: (err?: Error | null) => void): Promise<void> {
      seen.push(key)
      if (callback) return super.put(key, value, callback) as unknown as Promise<void>
      return super.put(key, value)
    }
  }
  const store = new Counting()
  assert.equal(store.batch, undefined)
  const storage = new PlatformStorage(store)
  assert.equal(storage.atomicBatch, false)
  await storage.batch([
    { type: 'put', key: 'a', value: '1' },
    { type: 'put', key: 'b', value: '2' }
  ])
  assert.deepEqual(seen.sort(), ['a', 'b'])
  assert.equal(store.getSync('b'), '2')
})

test('memory store: range reads [gte, lt) in key order, a snapshot, with limit and values: false; the same as the stream fallback', async () => {
  const store = new MemoryStore()
  assert.equal(typeof store.range, 'function')
  for (const key of ['b.2', 'a.9', 'b.10', 'c.1', 'b.1', 'b']) await store.put(key, 'v' + key)
  const all = await store.range?.({ gte: 'b', lt: 'c' })
  assert.deepEqual(all?.map((e) => e.key), ['b', 'b.1', 'b.10', 'b.2'])
  assert.equal(all?.[1]?.value, 'vb.1')
  assert.deepEqual((await store.range?.({ gte: 'b.', lt: 'b.~', limit: 2 }))?.map((e) => e.key), ['b.1', 'b.10'])
  assert.deepEqual((await store.range?.({ gte: 'a', lt: 'b', values: false }))?.[0], { key: 'a.9', value: '' })
  // Read before a later write: the result does not change.
  const before = store.range?.({ gte: 'a', lt: 'z' })
  await store.put('a.0', 'late')
  assert.equal((await before)?.length, 6)
  // A subclass that changes the read stream keeps reading through it (PlatformStorage's fallback),
  // and both ways give the same entries.
  class Streamed extends MemoryStore {
    override createReadStream(): ReturnType<MemoryStore['createReadStream']> {
      return super.createReadStream()
    }
  }
  const streamed = new Streamed()
  assert.equal(streamed.range, undefined)
  for (const key of ['b.2', 'a.9', 'b.10', 'c.1', 'b.1', 'b']) await streamed.put(key, 'v' + key)
  const opts = { gte: 'b', lt: 'c', limit: 3 }
  assert.deepEqual(await new PlatformStorage(streamed).range(opts), await new PlatformStorage(store).range(opts))
})

test('memory store: batchNow applies every write within the call, or none (throws) when one is bad; the seen-id record writes through it, its batches told with no storage.batch() call', async () => {
  const store = new MemoryStore()
  assert.equal(store.batchNow?.([{ type: 'put', key: 'a', value: '1' }]), true)
  assert.equal(store.getSync('a'), '1', 'written when it returns')
  assert.throws(() => store.batchNow?.([{ type: 'put', key: 'b', value: '2' }, { type: 'put', key: '', value: '3' }]), (err: Error & { code?: string }) => err.code === 'ERR_STORAGE_BAD_KEY')
  assert.equal(store.getSync('b'), null, 'none of a bad batch')
  const storage = new PlatformStorage(store)
  await storage.open()
  let batches = 0
  const batch = storage.batch.bind(storage)
  storage.batch = (ops, options) => (batches++, batch(ops, options))
  const seen = await SeenIds.open({ storage })
  const sender = randomSignId()
  for (let seq = 0; seq < 3; seq++) await seen.recordSeq(sender, 'aaaaaaaaaaaaaaaa', seq, Date.now() + 60_000)
  assert.equal(seen.hasSeq(sender, 'aaaaaaaaaaaaaaaa', 2), true)
  assert.equal(batches, 0, 'no batch through the promise path')
  assert.match(store.getSync(`seen.${sender}`) ?? '', /^\{"aaaaaaaaaaaaaaaa":\[2,\d+\]\}$/, 'the record as JSON, in the store')
  await seen.close()
})
