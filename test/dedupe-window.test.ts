// The receiver's seen-id window (storage/seen-ids.ts): within `windowSeqs` seqs up to the highest
// handled, exactly the seqs handled count as seen, so a message that arrives after a higher one
// is handed over, not dropped as a duplicate; the record survives a restart, holds no bitmap once
// every seq of its window was handled, and below the window a seq is taken as a resend (the bound).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryStore } from '../src/index.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { SeenIds } from '../src/storage/seen-ids.js'
import { randomSignId } from './helpers/index.js'

const S = 'aaaaaaaaaaaaaaaa'
const id = (seq: number): string => `${S}-${seq}`

async function open(store: MemoryStore, windowSeqs?: number): Promise<{ seen: SeenIds; storage: PlatformStorage }> {
  const storage = new PlatformStorage(store)
  await storage.open()
  return { seen: await SeenIds.open({ storage, windowSeqs }), storage }
}

test('seen ids: out of order within the window, exactly the seqs handled are seen, across a restart', async () => {
  const store = new MemoryStore()
  const alice = randomSignId()
  let { seen, storage } = await open(store)
  const far = Date.now() + 3_600_000
  for (const seq of [0, 1, 2, 5, 9, 7]) await seen.record(alice, id(seq), far)
  const expect = (handled: number[], what: string): void => {
    for (let seq = 0; seq <= 12; seq++) assert.equal(seen.has(alice, id(seq)), handled.includes(seq), `${what}: seq ${seq}`)
  }
  expect([0, 1, 2, 5, 7, 9], 'in memory')
  await seen.close()
  await storage.close()
  ;({ seen, storage } = await open(store))
  expect([0, 1, 2, 5, 7, 9], 'after a restart')
  // Filling the holes: each becomes seen once handled; then the window needs no bitmap.
  for (const seq of [3, 4, 6, 8]) {
    assert.equal(seen.has(alice, id(seq)), false)
    await seen.record(alice, id(seq), far)
  }
  expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'holes filled')
  await seen.close()
  assert.equal((JSON.parse((await storage.get('seen.' + alice)) as string) as Record<string, unknown[]>)[S]?.length, 2, 'no bitmap stored once every seq of the window was handled')
  await storage.close()
})

test('seen ids: a stream first heard at a high seq has seen nothing below it; past the window a seq counts as a resend (the bound)', async () => {
  const store = new MemoryStore()
  const bob = randomSignId()
  const { seen, storage } = await open(store, 64)
  const far = Date.now() + 3_600_000
  await seen.record(bob, id(1000), far)
  assert.equal(seen.has(bob, id(999)), false, 'first heard at 1000: 999 was never handled')
  assert.equal(seen.has(bob, id(937)), false, 'the lowest seq of the window (64 up to 1000)')
  assert.equal(seen.has(bob, id(936)), true, 'below the window: taken as handled')
  // A jump wider than the window: everything between is unhandled, within the window.
  await seen.record(bob, id(1200), far)
  assert.equal(seen.has(bob, id(1199)), false)
  assert.equal(seen.has(bob, id(1000)), true, 'below the window now')
  for (let seq = 1137; seq < 1200; seq++) await seen.record(bob, id(seq), far)
  for (let seq = 1137; seq <= 1200; seq++) assert.equal(seen.has(bob, id(seq)), true)
  assert.equal(seen.has(bob, id(1201)), false)
  await seen.close()
  await storage.close()
})

test('seen ids: a long run in order keeps exact answers as the window slides (compared with a set)', async () => {
  const { seen, storage } = await open(new MemoryStore(), 32)
  const carol = randomSignId()
  const far = Date.now() + 3_600_000
  const handled = new Set<number>()
  // Mostly in order, some skipped for a while and handled later, some never (expired at the sender).
  let x = 7
  const late: number[] = []
  for (let seq = 0; seq < 600; seq++) {
    x = (x * 1103515245 + 12345) % 2 ** 31
    if (x % 7 === 0) continue // never sent here
    if (x % 5 === 0) {
      late.push(seq)
      continue
    }
    await seen.record(carol, id(seq), far)
    handled.add(seq)
    while (late.length && (late[0] as number) < seq - 20) {
      const l = late.shift() as number
      assert.equal(seen.has(carol, id(l)), false, `${l} arrives late, not yet handled`)
      await seen.record(carol, id(l), far)
      handled.add(l)
    }
    for (let q = Math.max(0, seq - 31); q <= seq + 1; q++) assert.equal(seen.has(carol, id(q)), handled.has(q), `after ${seq}: ${q}`)
  }
  await seen.close()
  await storage.close()
})

test('seen ids: the records of one turn share one promise and one write per sender; one made while a batch is written goes in the next; a failed write rejects its records', async () => {
  const puts: string[] = []
  let fail = false
  class CountingStore extends MemoryStore {
    override put(key: string, value: string, callback?: (err?: Error | null) => void): Promise<void> {
      puts.push(key)
      const done = fail ? Promise.reject(new Error('disk full')) : super.put(key, value)
      if (callback) done.then(() => callback(null), callback)
      return done
    }
  }
  const { seen, storage } = await open(new CountingStore())
  const [alice, bob] = [randomSignId(), randomSignId()]
  const far = Date.now() + 60_000
  const first = [seen.record(alice, id(1), far), seen.record(alice, id(2), far), seen.record(bob, id(1), far)]
  assert.ok(first.every((p) => p === first[0]), 'one promise for the batch')
  await Promise.resolve() // not cut yet: a record later in this turn still joins it
  const late = seen.record(alice, id(3), far)
  assert.equal(late, first[0])
  await first[0]
  assert.deepEqual(puts.sort(), [`seen.${alice}`, `seen.${bob}`].sort(), 'one write per sender')
  // While a batch is being written, records go in the next one.
  puts.length = 0
  const a = seen.record(alice, id(4), far)
  await new Promise((r) => setImmediate(r)) // cut and handed to storage
  const b = seen.record(alice, id(5), far)
  assert.notEqual(a, b)
  await Promise.all([a, b])
  assert.deepEqual(puts, [`seen.${alice}`, `seen.${alice}`])
  fail = true
  await assert.rejects(seen.record(bob, id(2), far), /disk full/)
  fail = false
  await seen.close()
  await storage.close()
})

test('seen ids: a batch tells each listener once, never synchronously, after its write (or with its error); a foreign id is written at once', async () => {
  let fail = false
  let gate: (() => void) | undefined
  class GatedStore extends MemoryStore {
    override put(key: string, value: string, callback?: (err?: Error | null) => void): Promise<void> {
      const done = new Promise<void>((resolve) => (gate = resolve)).then(() => (fail ? Promise.reject(new Error('disk full')) : super.put(key, value)))
      if (callback) done.then(() => callback(null), callback)
      return done
    }
  }
  const { seen, storage } = await open(new GatedStore())
  const alice = randomSignId()
  const far = Date.now() + 60_000
  const stream = 'aaaaaaaaaaaaaaaa'
  const told: Array<[string, Error | undefined]> = []
  const listener = (name: string) => ({ recorded: (err: Error | undefined) => void told.push([name, err]) })
  const batch = seen.markSeq(alice, stream, 1, far)
  assert.equal(seen.markSeq(alice, stream, 2, far), batch, 'one batch for the turn')
  batch.listen(listener('a'))
  batch.listen(listener('b'))
  await new Promise((r) => setImmediate(r)) // cut: handed to storage, not yet written
  assert.deepEqual(told, [], 'not told before the write')
  gate?.()
  await batch.promise
  assert.deepEqual(told, [['a', undefined], ['b', undefined]], 'each told once, after the write')
  assert.ok(seen.hasSeq(alice, stream, 2))
  // A failed write: the listener hears the error (its ACKs must not go).
  told.length = 0
  fail = true
  const failed = seen.markSeq(alice, stream, 3, far)
  failed.listen(listener('c'))
  await new Promise((r) => setImmediate(r))
  gate?.()
  await assert.rejects(failed.promise, /disk full/)
  assert.equal(told.length, 1)
  assert.match(String(told[0]?.[1]), /disk full/)
  fail = false
  // A foreign id (seq past 2^53): nothing to write, told in a microtask, not synchronously.
  told.length = 0
  const foreign = seen.markSeq(alice, stream, 2 ** 60, far)
  foreign.listen(listener('d'))
  assert.deepEqual(told, [])
  await Promise.resolve()
  assert.deepEqual(told, [['d', undefined]])
  assert.equal(seen.hasSeq(alice, stream, 2 ** 60), false)
  const closing = seen.close()
  gate?.()
  await closing
  await assert.rejects(seen.markSeq(alice, stream, 4, far).promise, (err: Error & { code?: string }) => err.code === 'ERR_CLOSED')
  await storage.close()
})
