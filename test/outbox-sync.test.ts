// `outbox: { sync: true }` (issue 10): on the default LevelDB store (dataDir) a non-realtime send
// is accepted, delivered, and survives a restart of the sender; and the flag reaches the store:
// every batch that writes the sender's outbox, and the receiver's record of seen ids, is written
// with `sync: true`, while a node without the option writes them without it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LevelStore, Platform, type PlatformOptions } from '../src/index.js'
import type { BatchOp, OpenBatch } from '../src/storage/store.js'
import { tempDir, waitUntil } from './helpers/index.js'

const TIMINGS = { reconnectMinMs: 20, reconnectMaxMs: 200, tickMs: 50 }

function node(dataDir: string, extra: PlatformOptions = {}): Platform {
  return new Platform({ dataDir, tcp: { host: '127.0.0.1' }, udp: false, lookupTimeoutMs: 200, ...extra, connections: { timings: TIMINGS } })
}

/** Every batch written to a LevelStore (the default store) in this test: its directory, keys and sync flag. */
interface Seen {
  dir: string
  keys: string[]
  sync: boolean | undefined
}

function spyOnBatches(t: { after(fn: () => void): void }): Seen[] {
  const seen: Seen[] = []
  const original = LevelStore.prototype.batch
  LevelStore.prototype.batch = function (this: LevelStore, ops: BatchOp[], options?: { sync?: boolean }) {
    seen.push({ dir: (this as unknown as { dir: string }).dir, keys: ops.map((o) => o.key), sync: options?.sync })
    return original.call(this, ops, options)
  }
  // A batch written within the call (the seen-id journal): spied on too, when it was.
  const originalNow = LevelStore.prototype.batchNow
  LevelStore.prototype.batchNow = function (this: LevelStore, ops: BatchOp[], options?: { sync?: boolean }) {
    const written = originalNow.call(this, ops, options)
    if (written) seen.push({ dir: (this as unknown as { dir: string }).dir, keys: ops.map((o) => o.key), sync: options?.sync })
    return written
  }
  // The group commit fills an open batch as appends come (storage/level-store.ts): spied on too.
  const originalOpen = LevelStore.prototype.openBatch
  LevelStore.prototype.openBatch = function (this: LevelStore): OpenBatch {
    const inner = originalOpen.call(this) as OpenBatch
    const dir = (this as unknown as { dir: string }).dir
    let keys: string[] = []
    return {
      add: (ops) => {
        inner.add(ops)
        keys.push(...ops.map((o) => o.key))
      },
      write: (options) => {
        seen.push({ dir, keys, sync: options?.sync })
        keys = []
        return inner.write(options)
      }
    }
  }
  t.after(() => {
    LevelStore.prototype.batch = original
    LevelStore.prototype.openBatch = originalOpen
    LevelStore.prototype.batchNow = originalNow
  })
  return seen
}

/** The sync flags of the batches written under `dir` that touch a key starting with `prefix`. */
function flags(seen: Seen[], dir: string, prefix: string): Array<boolean | undefined> {
  return seen.filter((s) => s.dir.startsWith(dir) && s.keys.some((k) => k.startsWith(prefix))).map((s) => s.sync)
}

test('outbox sync: true on the default store: accepted, delivered after a sender restart, and every outbox and seen-id batch is written with sync', async (t) => {
  const seen = spyOnBatches(t)
  const dirA = tempDir(t)
  const dirB = tempDir(t)
  let a = node(dirA, { outbox: { sync: true } })
  let b = node(dirB, { outbox: { sync: true } })
  await Promise.all([a.ready(), b.ready()])
  const bId = b.identity.getSignId()
  a.messaging.send('transports.nodeInfo', 'local', b.directory.getMyNodeInfo())
  await b.close()

  const N = 20
  const ids: string[] = []
  for (let i = 0; i < N; i++) assert.equal(a.messaging.send('sync', bId, { i }, { accepted: (id) => ids.push(id) }), true)
  await waitUntil(() => ids.length === N, 10_000, 'every message accepted into the outbox')
  // A dials B (down) and so stores B's nodeInfo, the only way it finds B after its restart.
  let stored: string | undefined
  while (!stored) stored = await a.storage.get('delivery.nodeInfo.' + bId).catch(() => undefined)
  await a.close()

  a = node(dirA, { outbox: { sync: true } })
  const delivered: string[] = []
  a.on('delivered', (info: { id: string }) => delivered.push(info.id))
  await a.ready()
  assert.deepEqual((await a.outbox.list()).map((m) => m.id).sort(), [...ids].sort(), 'the messages survived the restart')
  b = node(dirB, { outbox: { sync: true } })
  const got: number[] = []
  b.messaging.on('public.sync', (_topic, _sender, payload: { i: number }) => got.push(payload.i))
  t.after(async () => {
    await a.close()
    await b.close()
  })
  await b.ready()
  await waitUntil(() => delivered.length === N, 15_000, 'every message delivered')
  assert.deepEqual(got, [...Array(N).keys()], 'each once, in order')
  assert.deepEqual([...delivered].sort(), [...ids].sort())
  assert.equal((await a.outbox.list()).length, 0)

  const outboxA = flags(seen, dirA, 'outbox.')
  const seenB = flags(seen, dirB, 'seen.')
  assert.ok(outboxA.length >= 2, `the sender's outbox was written in batches (${outboxA.length})`)
  assert.ok(seenB.length >= 1, `the receiver's seen ids were written in batches (${seenB.length})`)
  assert.deepEqual(outboxA.filter((s) => s !== true), [], 'every outbox batch with sync: true')
  assert.deepEqual(seenB.filter((s) => s !== true), [], 'every seen-id batch with sync: true')
})

test('outbox without sync: the same batches are written without it (the spy tells the two apart)', async (t) => {
  const seen = spyOnBatches(t)
  const dirA = tempDir(t)
  const dirB = tempDir(t)
  const a = node(dirA)
  const b = node(dirB)
  t.after(async () => {
    await a.close()
    await b.close()
  })
  await Promise.all([a.ready(), b.ready()])
  const bId = b.identity.getSignId()
  a.messaging.send('transports.nodeInfo', 'local', b.directory.getMyNodeInfo())
  let delivered = 0
  a.on('delivered', () => delivered++)
  for (let i = 0; i < 5; i++) a.messaging.send('sync', bId, { i })
  await waitUntil(() => delivered === 5, 10_000, 'delivered')
  const outboxA = flags(seen, dirA, 'outbox.')
  const seenB = flags(seen, dirB, 'seen.')
  assert.ok(outboxA.length >= 1 && seenB.length >= 1)
  assert.ok(outboxA.every((s) => s !== true) && seenB.every((s) => s !== true), 'no sync asked for')
})
