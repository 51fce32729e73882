/**
 * The outbox's stored records (src/storage/outbox-keys.ts) and the store capabilities they use:
 * the byte form in the default store, JSON records of earlier versions still loading beside it,
 * byte values refused by string-only stores, and the group commit's open batch (a bad write
 * rejects only its caller; the next batch goes to storage before the last one's callers run).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import kadfs from 'kad-fs'
import { LevelStore, MemoryStore, StorageError } from '../src/index.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { OutboxStore } from '../src/storage/outbox-store.js'
import { GroupCommit } from '../src/storage/group-commit.js'
import { RecordArena, decodeStored, encodeRecord, encodeRecordBinary, mainKey, parseMainKey } from '../src/storage/outbox-keys.js'
import type { BatchOp, KadStore, OpenBatch } from '../src/storage/store.js'
import { randomSignId, tempDir } from './helpers/index.js'

const HOUR = 3_600_000

test('outbox records: the byte form round-trips any topic, protocol and payload; damage decodes to null', () => {
  const arena = new RecordArena(4096)
  const payload = Buffer.from([0x7b, 0x00, 0xff, 0xfe, 0x01])
  const a = encodeRecordBinary(arena, '0123456789abcdef-42', 'tópic ✓ 😀', 'pröto', 1_700_000_000_123, payload)
  const b = encodeRecordBinary(arena, '0123456789abcdef-43', '', '', 5, new Uint8Array(0))
  assert.deepEqual(decodeStored(a), { id: '0123456789abcdef-42', topic: 'tópic ✓ 😀', protocol: 'pröto', createdAt: 1_700_000_000_123, payload })
  assert.deepEqual(decodeStored(b), { id: '0123456789abcdef-43', topic: '', protocol: '', createdAt: 5, payload: Buffer.alloc(0) })
  assert.equal(a.buffer, b.buffer, 'records share the arena chunk')
  assert.deepEqual(decodeStored(a)?.payload, payload, 'a later record does not overwrite an earlier one')
  // Larger than the chunk: a chunk of its own.
  const big = encodeRecordBinary(arena, '0123456789abcdef-44', 't', 'p', 1, Buffer.alloc(10_000, 7))
  assert.equal(decodeStored(big)?.payload.length, 10_000)
  const after = encodeRecordBinary(arena, '0123456789abcdef-46', 't', 'p', 1, Buffer.alloc(1))
  assert.notEqual(after.buffer, big.buffer, 'a big record does not become the chunk (its memory is not kept)')
  assert.equal(after.buffer, a.buffer)
  assert.equal(decodeStored(after)?.id, '0123456789abcdef-46')
  // The JSON form (earlier versions, and string-only stores), as text or as its bytes.
  const json = encodeRecord('0123456789abcdef-45', 'a "topic"', 'p', 9, payload)
  for (const v of [json, Buffer.from(json)]) assert.deepEqual(decodeStored(v), { id: '0123456789abcdef-45', topic: 'a "topic"', protocol: 'p', createdAt: 9, payload })
  for (const bad of [a.subarray(0, 12), a.subarray(0, a.length - payload.length - 2), Buffer.from([0x02, ...a.subarray(1)]), Buffer.from('{"i":1}'), Buffer.alloc(0)]) {
    assert.equal(decodeStored(bad), null, `damaged: ${bad.toString('hex').slice(0, 40)}`)
  }
  const badId = Buffer.from(a)
  badId[10] = 0x20 // a space inside the id
  assert.equal(decodeStored(badId), null, 'an id that is not one of ours')
})

test('outbox records: a head byte is stored before the payload in both forms, for every payload length and byte value', () => {
  const arena = new RecordArena(4096)
  for (let length = 0; length <= 7; length++) {
    for (const head of [0, 1, 0x7b, 0xff]) {
      const payload = Buffer.from(Array.from({ length }, (_, i) => (i * 97 + head + 251) & 0xff))
      const expected = Buffer.concat([Buffer.from([head]), payload])
      const binary = encodeRecordBinary(arena, '0123456789abcdef-7', 't', 'p', 3, payload, head)
      assert.deepEqual(decodeStored(binary)?.payload, expected, `byte form, ${length} bytes, head ${head}`)
      const json = encodeRecord('0123456789abcdef-7', 't', 'p', 3, payload, head)
      assert.deepEqual(decodeStored(json)?.payload, expected, `JSON form, ${length} bytes, head ${head}`)
      assert.deepEqual(decodeStored(encodeRecord('0123456789abcdef-7', 't', 'p', 3, expected)), decodeStored(json), 'the same record as head and payload together')
    }
  }
})

test('outbox records: messages stored as JSON (before the byte form) load, list, expire and are removed beside new ones', async (t) => {
  const dir = tempDir(t)
  const dest = randomSignId()
  let now = 1_000_000
  // The outbox of an earlier version: a default store whose records are JSON strings.
  const level = new LevelStore({ dir })
  const old = new PlatformStorage(Object.assign(Object.create(level) as LevelStore, { binaryValues: false }))
  await old.open()
  assert.equal(old.binaryValues, false)
  let outbox = await OutboxStore.open({ storage: old, now: () => now })
  const before = [await outbox.append({ destination: dest, topic: 'old0', protocol: 'ms', payload: Buffer.from('zero'), expiresAt: now + HOUR })]
  before.push(await outbox.append({ destination: dest, topic: 'old1', protocol: 'ms', payload: Buffer.from([0xff, 0x00]), expiresAt: now + 10 }))
  await outbox.close()
  const stored = await old.range({ gte: 'outbox.m.', lt: 'outbox.m.~' })
  assert.ok(stored.every((e) => e.value.startsWith('{"i":')), 'written as JSON')
  await old.close()

  const storage = new PlatformStorage(new LevelStore({ dir }))
  await storage.open()
  t.after(() => storage.close())
  assert.equal(storage.binaryValues, true)
  const expired: Array<string | undefined> = []
  outbox = await OutboxStore.open({ storage, now: () => now, onExpired: (m) => expired.push(m.topic) })
  const added = await outbox.append({ destination: dest, topic: 'new2', protocol: 'ms', payload: Buffer.from('two'), expiresAt: now + HOUR })
  const raw = await storage.rangeBinary({ gte: 'outbox.m.', lt: 'outbox.m.~' })
  assert.equal(raw[2]?.value[0], 0x01, 'new records are bytes')
  const pending = await outbox.pending(dest)
  assert.deepEqual(pending.map((m) => [m.id, m.topic, m.payload.toString('hex'), m.createdAt]), [
    [before[0]!.id, 'old0', Buffer.from('zero').toString('hex'), 1_000_000],
    [before[1]!.id, 'old1', 'ff00', 1_000_000],
    [added.id, 'new2', Buffer.from('two').toString('hex'), 1_000_000]
  ])
  now += 20
  assert.equal(await outbox.expire(), 1)
  assert.deepEqual(expired, ['old1'], 'the topic of an expired JSON record is read')
  assert.equal(await outbox.remove(pending[0]!), true)
  assert.deepEqual((await outbox.pending(dest)).map((m) => m.topic), ['new2'])
  assert.deepEqual(outbox.stats(dest), { messages: 1, bytes: added.bytes })
  await outbox.close()
})

test('store capabilities: byte values are kept exactly by the default store and refused by string-only stores', async (t) => {
  const level = new PlatformStorage(new LevelStore({ dir: tempDir(t) }))
  await level.open()
  t.after(() => level.close())
  const bytes = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28])
  await level.batch([{ type: 'put', key: 'k.1', value: bytes }, { type: 'put', key: 'k.2', value: 'text ✓' }])
  const read = await level.rangeBinary({ gte: 'k.', lt: 'k.~' })
  assert.deepEqual(read.map((e) => [e.key, e.value.toString('hex')]), [['k.1', bytes.toString('hex')], ['k.2', Buffer.from('text ✓').toString('hex')]])
  assert.equal((await level.range({ gte: 'k.2', lt: 'k.3' }))[0]?.value, 'text ✓', 'text stays text')
  for (const store of [new MemoryStore(), kadfs(tempDir(t) + '/') as unknown as KadStore]) {
    const strings = new PlatformStorage(store)
    await strings.open()
    assert.equal(strings.binaryValues, false)
    await assert.rejects(strings.batch([{ type: 'put', key: 'k', value: bytes }]), (err: unknown) => err instanceof StorageError && err.code === 'ERR_STORAGE_BAD_KEY')
    await assert.rejects(strings.rangeBinary({ gte: 'a', lt: 'b' }), StorageError)
    assert.equal(await strings.get('k'), undefined, 'nothing written')
  }
})

test('group commit: with an open batch a bad write rejects only its caller, and the next batch is handed over before the last one is reported', async (t) => {
  const storage = new PlatformStorage(new LevelStore({ dir: tempDir(t) }))
  await storage.open()
  t.after(() => storage.close())
  const commit = new GroupCommit(storage)
  const good = commit.write([{ type: 'put', key: 'a', value: '1' }])
  const bad = commit.write([{ type: 'put', key: 'b', value: '2' }, { type: 'put', key: 'identity', value: 'x' }])
  await Promise.all([good, assert.rejects(bad, (err: unknown) => err instanceof StorageError && err.code === 'ERR_STORAGE_BAD_KEY')])
  assert.equal(await storage.get('a'), '1')
  assert.equal(await storage.get('b'), undefined, "a bad caller's other writes are not written either")
  await commit.close()

  // A store whose batch writes are released by hand, recording the order of events.
  const order: string[] = []
  const releases: Array<() => void> = []
  const inner = new MemoryStore()
  const store: KadStore = Object.assign(Object.create(inner) as MemoryStore, {
    batch: async () => {},
    openBatch: (): OpenBatch => {
      const ops: BatchOp[] = []
      return {
        add: (more: BatchOp[]) => void ops.push(...more),
        write: () => {
          order.push(`write ${ops.map((o) => o.key).join(',')}`)
          return new Promise<void>((resolve) => releases.push(resolve))
        }
      }
    }
  })
  const gc = new GroupCommit(new PlatformStorage(store))
  const first = gc.write([{ type: 'put', key: 'x', value: '1' }]).then(() => order.push('x reported'))
  await new Promise((r) => setImmediate(r))
  const second = gc.write([{ type: 'put', key: 'y', value: '2' }]).then(() => order.push('y reported'))
  releases.shift()?.()
  await first
  assert.deepEqual(order, ['write x', 'write y', 'x reported'])
  releases.shift()?.()
  await second
  await gc.close()
})

test('outbox keys: the key an append builds from cached parts is mainKey() of its entry, across seq, expiry and size changes', async (t) => {
  const dir = tempDir(t)
  const pre = new PlatformStorage(new LevelStore({ dir }))
  await pre.open()
  // An id stream far along: the seq's upper hex digits are cached and must roll over correctly.
  await pre.put('outbox.meta', JSON.stringify({ stream: '0123456789abcdef', next: 2 ** 40 - 300 }))
  await pre.close()
  const storage = new PlatformStorage(new LevelStore({ dir }))
  await storage.open()
  t.after(() => storage.close())
  const outbox = await OutboxStore.open({ storage })
  const [a, b] = [randomSignId(), randomSignId()]
  const now = Date.now()
  const entries = await Promise.all(
    Array.from({ length: 600 }, (_, n) =>
      outbox.append({ destination: n % 3 ? a : b, topic: 't', protocol: 'p', payload: Buffer.alloc(n % 5), expiresAt: now + HOUR + (n % 7 === 0 ? n : 0) })
    )
  )
  const keys = (await storage.range({ gte: 'outbox.m.', lt: 'outbox.m.~', values: false })).map((e) => e.key).sort()
  assert.deepEqual(keys, entries.map((e) => mainKey({ dest: e.destination, seq: e.seq, expiresAt: e.expiresAt, bytes: e.bytes })).sort())
  assert.ok(entries.some((e) => e.seq % 256 === 0) && entries[0]!.seq === 2 ** 40 - 300)
  for (const e of entries) assert.deepEqual(parseMainKey(mainKey({ dest: e.destination, seq: e.seq, expiresAt: e.expiresAt, bytes: e.bytes })), { dest: e.destination, seq: e.seq, expiresAt: e.expiresAt, bytes: e.bytes })
  await outbox.close()
})

test('group commit: byte values are copied by write(), so a caller may reuse its buffer at once (also without an open batch)', async (t) => {
  for (const open of [true, false]) {
    const level = new LevelStore({ dir: tempDir(t) })
    // Without openBatch the group commit keeps the ops until the batch is cut.
    const store = open ? level : (Object.assign(Object.create(level) as LevelStore, { openBatch: () => undefined }) as LevelStore)
    const storage = new PlatformStorage(store)
    await storage.open()
    const commit = new GroupCommit(storage)
    const buf = Buffer.from('first')
    const written = commit.write([{ type: 'put', key: 'k', value: buf }])
    buf.write('WRONG')
    await written
    assert.equal((await storage.rangeBinary({ gte: 'k', lt: 'l' }))[0]?.value.toString(), 'first', open ? 'open batch' : 'ops kept until the cut')
    await commit.close()
    await storage.close()
  }
})

test('default store: its reused LevelDB batches start empty, and a batch written after close() is refused, not a crash', async (t) => {
  const store = new LevelStore({ dir: tempDir(t) })
  const storage = new PlatformStorage(store)
  await storage.open()
  for (let i = 0; i < 4; i++) {
    await storage.batch([{ type: 'put', key: `k${i}`, value: Buffer.from([i]) }])
    await storage.del(`k${i}`)
  }
  await storage.batch([{ type: 'put', key: 'last', value: 'x' }])
  assert.deepEqual((await storage.range({ gte: 'k', lt: 'm' })).map((e) => e.key), ['last'], 'no earlier put is written again')
  const open = storage.openBatch()
  assert.ok(open)
  open.add([{ type: 'put', key: 'late', value: 'y' }])
  await storage.close()
  await assert.rejects(open.write(), (err: unknown) => err instanceof StorageError && err.code === 'ERR_STORAGE_UNAVAILABLE')
  const again = new PlatformStorage(new LevelStore({ dir: store.dir }))
  await again.open()
  assert.equal(await again.get('late'), undefined)
  await again.close()
})

test('group commit and outbox: a write refused before it joins a batch is reported as refused, and an append refused so does not count', async (t) => {
  const storage = new PlatformStorage(new LevelStore({ dir: tempDir(t) }))
  await storage.open()
  t.after(() => storage.close())
  const refused: unknown[] = []
  const written: unknown[] = []
  const commit = new GroupCommit(storage, { refused: (tag) => refused.push(tag), afterBatch: (tags) => written.push(...tags) })
  const bad = assert.rejects(commit.write([{ type: 'put', key: 'identity', value: 'x' }], 'bad'), StorageError)
  await commit.write([{ type: 'put', key: 'a', value: '1' }], 'good')
  await bad
  await commit.close()
  await assert.rejects(commit.write([], 'late'), (err: unknown) => (err as { code?: string }).code === 'ERR_CLOSED')
  assert.deepEqual(refused, ['bad', 'late'])
  assert.deepEqual(written, ['good'])

  // An outbox on a store that refuses its ops: the append rejects and leaves no count behind.
  const level = new LevelStore({ dir: tempDir(t) })
  let refuse = false // open() writes its id reservation first
  const refusing = Object.assign(Object.create(level) as LevelStore, {
    openBatch(this: LevelStore): OpenBatch {
      const inner = LevelStore.prototype.openBatch.call(this) as OpenBatch
      return {
        add: (ops) => {
          if (refuse) throw new StorageError('ERR_STORAGE_UNAVAILABLE', 'refused')
          inner.add(ops)
        },
        write: (o) => inner.write(o)
      }
    }
  })
  const s2 = new PlatformStorage(refusing)
  await s2.open()
  t.after(() => s2.close())
  const outbox = await OutboxStore.open({ storage: s2 })
  refuse = true
  const dest = randomSignId()
  await assert.rejects(outbox.append({ destination: dest, topic: 't', protocol: 'p', payload: Buffer.alloc(3), expiresAt: Date.now() + HOUR }), /refused/)
  assert.deepEqual(outbox.stats(), { messages: 0, bytes: 0 })
  assert.deepEqual(outbox.destinations(), [])
  await outbox.close()
})

test('outbox: appends of a batch that fails reject together and give their counts back', async (t) => {
  const level = new LevelStore({ dir: tempDir(t) })
  let fail = false // open() writes its id reservation; the appends' batch fails
  const failing = Object.assign(Object.create(level) as LevelStore, {
    openBatch(this: LevelStore): OpenBatch {
      const inner = LevelStore.prototype.openBatch.call(this) as OpenBatch
      return { add: (ops) => inner.add(ops), write: async (o) => (fail ? Promise.reject(new StorageError('ERR_STORAGE_UNAVAILABLE', 'disk full')) : inner.write(o)) }
    }
  })
  const storage = new PlatformStorage(failing)
  await storage.open()
  t.after(() => storage.close())
  const outbox = await OutboxStore.open({ storage })
  fail = true
  const dest = randomSignId()
  const m = { destination: dest, topic: 't', protocol: 'p', payload: Buffer.alloc(3), expiresAt: Date.now() + HOUR }
  const results = await Promise.allSettled([outbox.append(m), outbox.append(m), outbox.append(m)])
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected'])
  assert.deepEqual(outbox.stats(), { messages: 0, bytes: 0 })
  fail = false
  const kept = await outbox.append(m)
  assert.deepEqual(outbox.stats(dest), { messages: 1, bytes: kept.bytes })
  assert.deepEqual((await outbox.pending(dest)).map((x) => x.id), [kept.id])
  await outbox.close()
})
