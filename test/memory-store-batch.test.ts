// MemoryStore's batch: all or none, applied at once; a subclass that changes put or del keeps its
// writes going through them (tests' slow or failing stores rely on it).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryStore } from '../src/index.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'

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
