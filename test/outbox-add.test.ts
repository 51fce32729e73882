/**
 * The outbox's promise-free path for the delivery's sends (src/storage/outbox-store.ts add() and
 * discard(), group-commit.ts add()): each append is told once whether it was written, a message
 * settled within the write-behind is never written, a written one's removal is, a head byte is
 * stored before the payload, and a failed or refused write reaches each writer without a promise.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LevelStore, MemoryStore } from '../src/index.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { OutboxStore } from '../src/storage/outbox-store.js'
import { GroupCommit } from '../src/storage/group-commit.js'
import type { KadStore, RangeOptions, StoreEntry } from '../src/storage/store.js'
import { randomSignId, tempDir } from './helpers/index.js'

const HOUR = 3_600_000

/** Records the keys of every batch written. */
function watch(storage: PlatformStorage): { puts: string[]; dels: string[] } {
  const seen = { puts: [] as string[], dels: [] as string[] }
  const batch = storage.batch.bind(storage)
  storage.batch = async (ops, options) => {
    for (const op of ops) (op.type === 'put' ? seen.puts : seen.dels).push(op.key)
    return batch(ops, options)
  }
  // The default store fills open batches; watching batch() needs them off.
  storage.openBatch = () => undefined
  return seen
}

for (const kind of ['level', 'memory'] as const) {
  test(`outbox add/discard (${kind} store): done says whether it was written; settled within the write-behind it never is; a written one is removed by a write; a head byte is stored before the payload`, async (t) => {
    const storage = new PlatformStorage(kind === 'level' ? new LevelStore({ dir: tempDir(t) }) : new MemoryStore())
    await storage.open()
    t.after(() => storage.close())
    const seen = watch(storage)
    // A delay no test run reaches: the second append is written by list() below, not by time.
    const outbox = await OutboxStore.open({ storage, writeBehindMs: 600_000 })
    t.after(() => outbox.close())
    const dest = randomSignId()
    const told: Array<{ name: string; err: Error | undefined; written: boolean; sync: boolean }> = []
    const add = (name: string, payload: Buffer, head?: number) => {
      let sync = true
      const a = outbox.add({ destination: dest, topic: 'a', protocol: 'ms', payload, head, expiresAt: Date.now() + HOUR }, (err, written) => told.push({ name, err, written, sync }))
      sync = false
      return a
    }
    const quick = add('quick', Buffer.from('xyz'), 1)
    const slow = add('slow', Buffer.from('hello'), 0)
    assert.equal(quick.bytes, 1 + 3 + 1 + 2, 'the head byte counts')
    assert.deepEqual(outbox.stats(dest), { messages: 2, bytes: quick.bytes + slow.bytes })
    outbox.discard(quick) // acknowledged within the delay
    assert.deepEqual(outbox.stats(dest), { messages: 1, bytes: slow.bytes }, 'counted out at once')
    await new Promise((r) => setTimeout(r, 0))
    assert.deepEqual(told, [{ name: 'quick', err: undefined, written: false, sync: false }], 'told in a later turn, not written')
    assert.equal((await outbox.list()).length, 1, 'list() writes what waits')
    await new Promise((r) => setTimeout(r, 0))
    assert.deepEqual(told.map((x) => [x.name, x.written, x.err]), [['quick', false, undefined], ['slow', true, undefined]])
    const mains = seen.puts.filter((k) => k.startsWith('outbox.m.'))
    assert.deepEqual(mains, [slow.key], 'only the message still waiting was written')
    const [stored] = await outbox.pending(dest)
    assert.equal(stored?.id, slow.id)
    assert.deepEqual(stored?.payload, Buffer.from('\u0000hello'), 'the head byte, then the payload')
    outbox.discard(slow)
    assert.deepEqual(outbox.stats(dest), { messages: 0, bytes: 0 })
    assert.deepEqual(await outbox.pending(dest), [], 'hidden at once')
    await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(seen.dels.filter((k) => k.startsWith('outbox.m.')), [slow.key], 'its removal was written')
  })
}

test('group commit add(): no promise, yet a failed batch and a refused write reach each writer through its tag (and nothing rejects unhandled)', async () => {
  let fail = true
  const inner = new MemoryStore()
  const store: KadStore = Object.assign(Object.create(inner) as MemoryStore, {
    batch: async () => {
      if (fail) throw new Error('disk full')
    }
  })
  const after: Array<[string, boolean, string | undefined]> = []
  const refused: Array<[string, string]> = []
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => void unhandled.push(err)
  process.on('unhandledRejection', onUnhandled)
  try {
    const commit = new GroupCommit(new PlatformStorage(store), {
      afterBatch: (tags, ok, err) => {
        for (const tag of tags) after.push([tag as string, ok, err?.message])
      },
      refused: (tag, err) => void refused.push([tag as string, (err as { code?: string }).code ?? err.message])
    })
    commit.add([{ type: 'put', key: 'a', value: '1' }], 'a')
    commit.add([{ type: 'put', key: 'b', value: '2' }], 'b')
    await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(after.map(([tag, ok]) => [tag, ok]), [['a', false], ['b', false]], 'both writers of the failed batch are told')
    for (const [, , message] of after) assert.match(message ?? '', /batch write failed|disk full/)
    fail = false
    commit.add([{ type: 'put', key: 'c', value: '3' }], 'c')
    await commit.close()
    assert.deepEqual(after.slice(2), [['c', true, undefined]])
    commit.add([{ type: 'put', key: 'd', value: '4' }], 'd')
    assert.deepEqual(refused, [['d', 'ERR_CLOSED']], 'a write after close() is refused at once')
    await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(unhandled, [])
  } finally {
    process.off('unhandledRejection', onUnhandled)
  }
})

test('pending() does not show a message whose removal was written while it was reading', async (t) => {
  /** A memory store whose range reads its entries, then waits for the test before answering. */
  class SlowRange extends MemoryStore {
    gate: Promise<void> | undefined
    read = false
    override async range(options: RangeOptions): Promise<StoreEntry[]> {
      const out: StoreEntry[] = []
      for await (const e of this.createReadStream() as AsyncIterable<StoreEntry>) if (e.key >= options.gte && e.key < options.lt) out.push(e)
      out.sort((a, b) => (a.key < b.key ? -1 : 1))
      this.read = true
      await this.gate
      return options.limit === undefined ? out : out.slice(0, options.limit)
    }
  }
  const store = new SlowRange()
  const storage = new PlatformStorage(store)
  await storage.open()
  t.after(() => storage.close())
  const outbox = await OutboxStore.open({ storage })
  t.after(() => outbox.close())
  const dest = randomSignId()
  let told!: (written: boolean) => void
  const written = new Promise<boolean>((resolve) => (told = resolve))
  const entry = outbox.add({ destination: dest, topic: 'a', protocol: 'ms', payload: Buffer.from('x'), expiresAt: Date.now() + HOUR }, (_err, w) => told(w))
  assert.equal(await written, true)
  await null
  let open!: () => void
  store.gate = new Promise<void>((r) => (open = r))
  const reading = outbox.pending(dest)
  while (!store.read) await new Promise((r) => setTimeout(r, 1))
  outbox.discard(entry)
  const key = entry.key
  // The removal is written (and `removing` has forgotten the key) before the read answers.
  while (await store.get(key).then(() => true, () => false)) await new Promise((r) => setTimeout(r, 1))
  await new Promise((r) => setTimeout(r, 5))
  open()
  assert.deepEqual(await reading, [], 'removed while the read was under way: not shown')
})

test('write-behind: appends settled out of order within the delay (by the entry, or by seq through remove()) are never written; the others are, each once, by time or at close', async (t) => {
  const storage = new PlatformStorage(new MemoryStore())
  await storage.open()
  t.after(() => storage.close())
  const seen = watch(storage)
  const outbox = await OutboxStore.open({ storage, writeBehindMs: 30 })
  const dest = randomSignId()
  const told: Array<[string, boolean]> = []
  const add = (name: string) =>
    outbox.add({ destination: dest, topic: 'a', protocol: 'ms', payload: Buffer.from(name), expiresAt: Date.now() + HOUR }, (err, written) => {
      assert.equal(err, undefined)
      told.push([name, written])
    })
  const a = add('a')
  const b = add('b')
  const c = add('c')
  const d = add('d')
  outbox.discard(c) // in the middle of the queue, by the entry add() gave
  assert.equal(await outbox.remove(b, { known: true }), true, 'by its seq') // the search
  assert.deepEqual(outbox.stats(dest).messages, 2)
  await new Promise((r) => setTimeout(r, 100))
  assert.deepEqual(seen.puts.filter((k) => k.startsWith('outbox.m.')), [a.key, d.key], 'the two still waiting were written, in order')
  assert.deepEqual(told, [['c', false], ['b', false], ['a', true], ['d', true]])
  // The head settled while the one after it waits: that one is still written, at close.
  const e = add('e')
  const f = add('f')
  outbox.discard(e)
  await outbox.close()
  assert.deepEqual(seen.puts.filter((k) => k.startsWith('outbox.m.')), [a.key, d.key, f.key])
  assert.deepEqual(told.slice(4), [['e', false], ['f', true]])
  assert.equal(seen.dels.length, 0, 'nothing written was removed: none settled after its write')
})
