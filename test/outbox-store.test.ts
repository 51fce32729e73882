/**
 * The persistent outbox (src/storage/outbox-store.ts), its group commit, durable ids and the
 * receiver's seen-id record, on real LevelDB in a temp dir (and kad-fs): order per destination,
 * removal, restarts, expiry by an injected clock, bounds, damaged entries, and a SIGKILL'd writer.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import kadfs from 'kad-fs'
import { LevelStore, MemoryStore, DeliveryError, StorageError } from '../src/index.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { OutboxStore, type OutboxStoreOptions } from '../src/storage/outbox-store.js'
import { SeenIds } from '../src/storage/seen-ids.js'
import { GroupCommit } from '../src/storage/group-commit.js'
import { parseMessageId } from '../src/storage/message-id.js'
import type { BatchOp, KadStore } from '../src/storage/store.js'
import { randomSignId, tempDir } from './helpers/index.js'

const HOUR = 3_600_000

async function levelStorage(dir: string): Promise<PlatformStorage> {
  const storage = new PlatformStorage(new LevelStore({ dir }))
  await storage.open()
  return storage
}

async function openOutbox(
  t: TestContext,
  dir: string,
  extra: Partial<OutboxStoreOptions> = {}
): Promise<{ outbox: OutboxStore; storage: PlatformStorage; close: () => Promise<void> }> {
  const storage = await levelStorage(dir)
  const outbox = await OutboxStore.open({ storage, ...extra })
  const close = async (): Promise<void> => {
    await outbox.close()
    await storage.close()
  }
  t.after(close) // also when an assertion fails midway
  return { outbox, storage, close }
}

const msg = (destination: string, n: number, expiresAt = Date.now() + HOUR) => ({
  destination,
  topic: `t${n}`,
  protocol: 'ms',
  payload: Buffer.from(`payload ${n}`),
  expiresAt
})

test('outbox: appends are listed per destination in order, with durable ids, and removed on ack', async (t) => {
  const dir = tempDir(t)
  const { outbox, close } = await openOutbox(t, dir)
  const [a, b] = [randomSignId(), randomSignId()]
  const entries = await Promise.all([0, 1, 2, 3, 4].map((n) => outbox.append(msg(n % 2 ? b : a, n))))
  assert.equal(new Set(entries.map((e) => e.id)).size, 5, 'ids are unique')
  for (const e of entries) assert.deepEqual(parseMessageId(e.id), { stream: outbox.streamId, seq: e.seq })
  const pa = await outbox.pending(a)
  assert.deepEqual(pa.map((m) => m.topic), ['t0', 't2', 't4'])
  assert.deepEqual(pa.map((m) => m.payload.toString()), ['payload 0', 'payload 2', 'payload 4'])
  assert.deepEqual((await outbox.pending(b)).map((m) => m.topic), ['t1', 't3'])
  assert.deepEqual(outbox.stats(a), { messages: 3, bytes: pa.reduce((s, m) => s + m.bytes, 0) })
  assert.equal(outbox.stats().messages, 5)

  assert.equal(await outbox.remove(pa[1]!), true)
  assert.equal(await outbox.remove(pa[1]!), false, 'a second ack removes nothing')
  assert.deepEqual((await outbox.pending(a)).map((m) => m.topic), ['t0', 't4'])
  assert.deepEqual((await outbox.pending(a, { afterSeq: pa[0]!.seq, limit: 1 })).map((m) => m.topic), ['t4'])
  assert.equal(await outbox.cancel(b, entries[3]!.id), true)
  assert.deepEqual((await outbox.pending(b)).map((m) => m.topic), ['t1'])
  assert.equal(outbox.stats().messages, 3)
  const listed = await outbox.list()
  assert.deepEqual(listed.map((m) => [m.destination, m.topic]), [[a, 't0'], [a, 't4'], [b, 't1']])
  assert.equal('payload' in (listed[0] ?? {}), false)
  assert.equal((await outbox.list(2)).length, 2)
  await close()
})

test('outbox: pending messages, counters and the id sequence survive a restart; ids never repeat', async (t) => {
  const dir = tempDir(t)
  const dest = randomSignId()
  let { outbox, close } = await openOutbox(t, dir)
  const first = await Promise.all([0, 1, 2].map((n) => outbox.append(msg(dest, n))))
  for (const e of first) await outbox.remove(e)
  await close()
  // An outbox emptied and reopened must still not reuse ids.
  ;({ outbox, close } = await openOutbox(t, dir))
  assert.equal(outbox.stats().messages, 0)
  const kept = await outbox.append(msg(dest, 3))
  assert.ok(first.every((e) => e.id !== kept.id && e.seq < kept.seq), 'first.every((e) => e.id !== kept.id && e.seq < kept.seq)')
  await close()
  ;({ outbox, close } = await openOutbox(t, dir))
  assert.deepEqual(outbox.stats(dest), { messages: 1, bytes: kept.bytes })
  assert.deepEqual(outbox.destinations(), [dest])
  const next = await outbox.append(msg(dest, 4))
  assert.ok(next.seq > kept.seq, 'next.seq > kept.seq')
  const ids = new Set([...first, kept].map((e) => e.id))
  assert.equal(ids.has(next.id), false)
  assert.deepEqual((await outbox.pending(dest)).map((m) => m.id), [kept.id, next.id])
  await close()
})

test('outbox: group commit writes many appends in few batches, and append resolves only once written', async () => {
  // A store whose batches wait for the test to let them through.
  const inner = new MemoryStore()
  let gate: () => void = () => {}
  let hold = false // open() writes its id reservation first
  const batches: number[] = []
  const store: KadStore = Object.assign(Object.create(inner) as MemoryStore, {
    batch: async (ops: BatchOp[]) => {
      if (!hold) {
        for (const op of ops) if (op.type === 'put') await inner.put(op.key, op.value as string)
        return
      }
      batches.push(ops.length)
      await new Promise<void>((resolve) => (gate = resolve))
      for (const op of ops) if (op.type === 'put') await inner.put(op.key, op.value as string)
      else await inner.del(op.key)
    }
  })
  const storage = new PlatformStorage(store)
  const outbox = await OutboxStore.open({ storage, maxBatchOps: 1024 })
  hold = true
  const dest = randomSignId()
  let resolved = 0
  const all = Array.from({ length: 1000 }, (_, n) => outbox.append(msg(dest, n)).then(() => resolved++))
  await new Promise((r) => setImmediate(r))
  await new Promise((r) => setImmediate(r))
  assert.equal(batches.length, 1, 'one batch for the appends of one turn')
  assert.equal(resolved, 0, 'nothing resolves before its batch is written')
  gate()
  await Promise.all(all)
  assert.equal(resolved, 1000)
  assert.ok(batches.length <= 2, `${batches.length} batches`)
  assert.equal(batches[0], 1000 + 1, 'one key per message and the destination counter (ids are reserved in blocks, at open)')
  await outbox.close()
})

test('group commit: a failed batch rejects exactly its own writers', async () => {
  let fail = true
  const inner = new MemoryStore()
  const store: KadStore = Object.assign(Object.create(inner) as MemoryStore, {
    batch: async () => {
      if (fail) throw new Error('disk full')
    }
  })
  const commit = new GroupCommit(new PlatformStorage(store))
  const first = commit.write([{ type: 'put', key: 'a', value: '1' }])
  await assert.rejects(first, /disk full/)
  fail = false
  await commit.write([{ type: 'put', key: 'b', value: '2' }])
  await commit.close()
  await assert.rejects(commit.write([]), (err: unknown) => (err as { code?: string }).code === 'ERR_CLOSED')
})

test('outbox: expiry by an injected clock removes and reports ERR_EXPIRED, without waiting', async (t) => {
  let now = 1_000_000
  const expired: Array<{ id: string; topic?: string; code: string }> = []
  const { outbox, close } = await openOutbox(t, tempDir(t), {
    now: () => now,
    onExpired: (m, err) => expired.push({ id: m.id, topic: m.topic, code: err.code })
  })
  const dest = randomSignId()
  const soon = await outbox.append(msg(dest, 0, now + 1000))
  const later = await outbox.append(msg(dest, 1, now + 5000))
  assert.equal(await outbox.expire(), 0)
  now += 1000
  assert.deepEqual((await outbox.pending(dest)).map((m) => m.id), [later.id], 'an expired message is not handed out')
  assert.equal(await outbox.expire(), 1)
  assert.deepEqual(expired, [{ id: soon.id, topic: 't0', code: 'ERR_EXPIRED' }])
  assert.deepEqual(outbox.stats(dest).messages, 1)
  now += 10_000
  assert.equal(await outbox.expire(), 1)
  assert.equal(outbox.stats().messages, 0)
  assert.equal(expired[1]?.id, later.id)
  await close()
})

test('outbox: bounds per destination and in total, messages and bytes, give ERR_QUEUE_FULL', async (t) => {
  const { outbox, close } = await openOutbox(t, tempDir(t), { maxMessagesPerDestination: 3, maxBytesPerDestination: 1000, maxMessages: 5, maxBytes: 1500 })
  const [a, b, c] = [randomSignId(), randomSignId(), randomSignId()]
  const full = (err: unknown): boolean => err instanceof DeliveryError && err.code === 'ERR_QUEUE_FULL'
  const first = await Promise.all([0, 1, 2].map((n) => outbox.append(msg(a, n))))
  await assert.rejects(outbox.append(msg(a, 3)), full, 'fourth for a')
  await outbox.append(msg(b, 4))
  await assert.rejects(outbox.append({ ...msg(b, 5), payload: Buffer.alloc(1000) }), full, 'bytes for b')
  await outbox.append(msg(b, 6))
  await assert.rejects(outbox.append(msg(c, 7)), full, 'five in all')
  await outbox.remove(first[0]!)
  await outbox.append(msg(c, 8))
  await outbox.remove(first[1]!)
  await assert.rejects(outbox.append({ ...msg(c, 9), payload: Buffer.alloc(1400) }), full, 'bytes in all')
  await close()
})

test('outbox: a damaged message or counter is reported and skipped or recounted, never fatal', async (t) => {
  const dir = tempDir(t)
  const corrupt: StorageError[] = []
  let { outbox, storage, close } = await openOutbox(t, dir, { onCorrupt: (err) => corrupt.push(err) })
  const dest = randomSignId()
  const e = await Promise.all([0, 1, 2, 3].map((n) => outbox.append(msg(dest, n))))
  const keys = (await storage.range({ gte: 'outbox.m.', lt: 'outbox.m.~', values: false })).map((x) => x.key)
  assert.equal(keys.length, 4)
  await storage.put(keys[1]!, '{"not": "a message"')
  const pending = await outbox.pending(dest)
  assert.deepEqual(pending.map((m) => m.id), [e[0]!.id, e[2]!.id, e[3]!.id])
  assert.equal(corrupt.length, 1)
  assert.equal(corrupt[0]?.code, 'ERR_STORAGE_CORRUPT')
  assert.deepEqual(outbox.stats(dest), { messages: 3, bytes: e[0]!.bytes + e[2]!.bytes + e[3]!.bytes }, 'the damaged one no longer counts')
  await close()
  // A stored counter that does not decode is recounted from the keys at open.
  await (async () => {
    const s = await levelStorage(dir)
    await s.put(`outbox.c.${dest}`, 'garbage')
    await s.close()
  })()
  ;({ outbox, storage, close } = await openOutbox(t, dir, { onCorrupt: (err) => corrupt.push(err) }))
  assert.equal(corrupt.length, 2, 'a damaged counter is reported at open')
  assert.deepEqual(outbox.stats(dest), { messages: 3, bytes: e[0]!.bytes + e[2]!.bytes + e[3]!.bytes })
  assert.deepEqual((await outbox.pending(dest)).map((m) => m.id), [e[0]!.id, e[2]!.id, e[3]!.id])
  await close()
  ;({ outbox, storage, close } = await openOutbox(t, dir, { onCorrupt: (err) => corrupt.push(err) }))
  assert.equal(corrupt.length, 2, 'the recount was stored')
  assert.equal(outbox.stats(dest).messages, 3)
  await close()
})

test('outbox: works on a kad-fs store too (no batch: one file per key)', async (t) => {
  const dir = tempDir(t)
  const dest = randomSignId()
  const make = async (): Promise<{ outbox: OutboxStore; storage: PlatformStorage }> => {
    const storage = new PlatformStorage(kadfs(dir + '/') as unknown as KadStore)
    await storage.open()
    return { storage, outbox: await OutboxStore.open({ storage }) }
  }
  let { outbox } = await make()
  assert.equal((outbox as unknown as { storage: PlatformStorage }).storage.atomicBatch, false)
  const e = await Promise.all([0, 1, 2].map((n) => outbox.append(msg(dest, n))))
  await outbox.remove(e[0]!)
  await outbox.close()
  ;({ outbox } = await make())
  assert.deepEqual((await outbox.pending(dest)).map((m) => m.id), [e[1]!.id, e[2]!.id])
  assert.equal(outbox.stats(dest).messages, 2)
  await outbox.close()
})

test('outbox: a writer killed with SIGKILL mid-stream loses nothing whose append resolved', async (t) => {
  const dir = tempDir(t)
  const dest = randomSignId()
  const reported = new Map<number, string>()
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join('test', 'fixtures', 'outbox-crash-child.ts')], {
      env: { ...process.env, DATA_DIR: dir, DEST: dest, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const killAfter = 2000 + Math.floor(Math.random() * 3000)
    let buffered = ''
    let lines = 0
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString()
      const parts = buffered.split('\n')
      buffered = parts.pop() ?? ''
      for (const line of parts) {
        const m = /^(\d+) (\S+)$/.exec(line)
        if (!m) continue
        assert.equal(reported.has(Number(m[1])), false, 'a seq is never handed out twice, across restarts too')
        reported.set(Number(m[1]), m[2]!)
        if (++lines === killAfter) child.kill('SIGKILL')
      }
    })
    const signal = await exited
    assert.equal(signal, 'SIGKILL', `the child was killed, not ended (${stderr.slice(0, 500)})`)
    const { outbox, close } = await openOutbox(t, dir)
    const stored = await outbox.pending(dest, { limit: 1_000_000 })
    await close()
    const storedIds = new Map(stored.map((m) => [m.seq, m.id]))
    for (const [seq, id] of reported) assert.equal(storedIds.get(seq), id, `append ${id} resolved, so it is stored`)
    const seqs = stored.map((m) => m.seq)
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in order')
  }
  assert.ok(reported.size >= 6000, 'reported.size >= 6000')
})

test('seen ids: recorded ids are seen after a restart, per sender and stream, until expiry', async (t) => {
  const dir = tempDir(t)
  let now = 5_000_000
  const [alice, bob] = [randomSignId(), randomSignId()]
  const s1 = 'aaaaaaaaaaaaaaaa'
  const s2 = 'bbbbbbbbbbbbbbbb'
  let storage = await levelStorage(dir)
  let seen = await SeenIds.open({ storage, now: () => now, skewMs: 1000 })
  assert.equal(seen.has(alice, `${s1}-5`), false)
  await Promise.all([seen.record(alice, `${s1}-5`, now + 10_000), seen.record(alice, `${s1}-7`, now + 10_000), seen.record(bob, `${s2}-1`, now + 60_000)])
  assert.equal(seen.has(alice, `${s1}-7`), true)
  assert.equal(seen.has(alice, `${s1}-5`), true, 'below the highest handled, and handled: a resend')
  assert.equal(seen.has(alice, `${s1}-6`), false, 'below the highest handled but never handled (seen-id window)')
  assert.equal(seen.has(alice, `${s1}-8`), false)
  assert.equal(seen.has(alice, `${s2}-1`), false, 'another stream')
  assert.equal(seen.has(bob, `${s1}-5`), false, 'another sender')
  assert.equal(seen.has(alice, 'not-an-id'), false)
  await seen.close()
  await storage.close()

  storage = await levelStorage(dir)
  seen = await SeenIds.open({ storage, now: () => now, skewMs: 1000 })
  assert.equal(seen.has(alice, `${s1}-7`), true, 'kept across a restart')
  assert.equal(seen.has(bob, `${s2}-1`), true)
  now += 11_001 // past alice's expiry plus skew
  assert.equal(seen.has(alice, `${s1}-7`), false)
  assert.equal(await seen.prune(), 1)
  assert.equal(seen.size, 1)
  await seen.close()
  await storage.close()
  storage = await levelStorage(dir)
  assert.equal(await storage.get(`seen.${alice}`), undefined, 'the pruned record is gone from storage')
  await storage.close()
})

test('seen ids: a damaged record is reported and dropped; bounds hold per sender and in total', async (t) => {
  const dir = tempDir(t)
  const now = 1_000
  const [alice, bob, carol] = [randomSignId(), randomSignId(), randomSignId()]
  let storage = await levelStorage(dir)
  await storage.put(`seen.${alice}`, '{broken')
  const corrupt: StorageError[] = []
  const seen = await SeenIds.open({ storage, now: () => now, maxSenders: 2, maxStreamsPerSender: 2, onCorrupt: (err) => corrupt.push(err) })
  assert.equal(corrupt.length, 1)
  assert.equal(corrupt[0]?.code, 'ERR_STORAGE_CORRUPT')
  await seen.record(bob, 'aaaaaaaaaaaaaaaa-1', now + 100)
  await seen.record(bob, 'bbbbbbbbbbbbbbbb-1', now + 200)
  await seen.record(bob, 'cccccccccccccccc-1', now + 300)
  assert.equal(seen.has(bob, 'aaaaaaaaaaaaaaaa-1'), false, 'the stream that expires first made room')
  assert.equal(seen.has(bob, 'cccccccccccccccc-1'), true)
  await seen.record(alice, 'aaaaaaaaaaaaaaaa-1', now + 50)
  await seen.record(carol, 'aaaaaaaaaaaaaaaa-1', now + 400)
  assert.equal(seen.size, 2)
  assert.equal(seen.has(alice, 'aaaaaaaaaaaaaaaa-1'), false, 'the sender whose records expire first made room')
  await seen.close()
  await storage.close()
  storage = await levelStorage(dir)
  assert.equal(await storage.get(`seen.${alice}`), undefined)
  await storage.close()
})

test('outbox write-behind: each append waits its own delay, so one made late in a burst can still be settled before it is written', async (t) => {
  const storage = new PlatformStorage(new MemoryStore())
  await storage.open()
  const puts: string[] = []
  const batch = storage.batch.bind(storage)
  storage.batch = async (ops, options) => {
    for (const op of ops) if (op.type === 'put') puts.push(op.key)
    return batch(ops, options)
  }
  const outbox = await OutboxStore.open({ storage, writeBehindMs: 200 })
  t.after(() => outbox.close())
  const alive = setInterval(() => {}, 1_000) // the write-behind timer does not hold the process
  t.after(() => clearInterval(alive))
  const dest = randomSignId()
  const msg = (text: string) => ({ destination: dest, topic: 'a', protocol: 'ms', payload: Buffer.from(text), expiresAt: Date.now() + HOUR })
  const first = outbox.appendNow(msg('first'))
  await new Promise((r) => setTimeout(r, 120))
  const second = outbox.appendNow(msg('second'))
  await first.written // at ~200 ms: its own delay is over
  assert.equal(puts.filter((k) => k.startsWith('outbox.m.')).length, 1, 'only the first append was written')
  assert.equal(await outbox.remove(second.entry, { known: true }), true)
  await second.written // settled by the removal, never written
  await new Promise((r) => setTimeout(r, 150)) // past the second append's own delay
  assert.equal(puts.filter((k) => k.startsWith('outbox.m.')).length, 1, 'the second append, settled within its delay, was never written')
})

test('outbox write-behind: an append with a shorter wait is never written before an earlier one (what is written is a prefix)', async (t) => {
  const storage = new PlatformStorage(new MemoryStore())
  await storage.open()
  const puts: string[] = []
  const batch = storage.batch.bind(storage)
  storage.batch = async (ops, options) => {
    for (const op of ops) if (op.type === 'put' && op.key.startsWith('outbox.m.')) puts.push(op.key)
    return batch(ops, options)
  }
  const outbox = await OutboxStore.open({ storage, writeBehindMs: 5 })
  t.after(() => outbox.close())
  const alive = setInterval(() => {}, 1_000)
  t.after(() => clearInterval(alive))
  const dest = randomSignId()
  const msg = (text: string, writeBehindMs: number) => ({ destination: dest, topic: 'a', protocol: 'ms', payload: Buffer.from(text), expiresAt: Date.now() + HOUR, writeBehindMs })
  const first = outbox.appendNow(msg('first', 150))
  const second = outbox.appendNow(msg('second', 0))
  await new Promise((r) => setTimeout(r, 60))
  assert.equal(puts.length, 0, 'the second waits for the first')
  await Promise.all([first.written, second.written])
  assert.equal(puts.length, 2)
  assert.deepEqual((await outbox.list()).map((m) => m.id), [first.entry.id, second.entry.id])
})
