/**
 * Stores: MemoryStore and LevelStore (callback and promise forms, object-mode read stream,
 * not-found errors), PlatformStorage over the real kad-fs package with hostile keys, the safe-key
 * encoding, and LevelStore's error mapping (locked, corrupt, unusable directory).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import fc from './helpers/fast-check.js'
import kadfs from 'kad-fs'
import { LevelStore, MemoryStore, Platform, StorageError, type KadStore, type StoreEntry } from '../src/index.js'
import { PlatformStorage } from '../src/storage/platform-storage.js'
import { decodeKey, encodeKey, MAX_ENCODED_KEY_BYTES } from '../src/storage/safe-keys.js'
import { CLI, listTree, nextEvent, runNode, tempDir } from './helpers/index.js'

type AnyStore = MemoryStore | LevelStore

const stores: Array<{ name: string; make: (t: import('node:test').TestContext) => AnyStore }> = [
  { name: 'MemoryStore', make: () => new MemoryStore() },
  {
    name: 'LevelStore',
    make: (t) => {
      const store = new LevelStore({ dir: tempDir(t) })
      t.after(() => store.close())
      return store
    }
  }
]

function cbGet(store: KadStore, key: string): Promise<{ err: Error | null | undefined; value?: string }> {
  return new Promise((resolve) => store.get(key, (err, value) => resolve({ err, value })))
}
function cbPut(store: KadStore, key: string, value: string): Promise<Error | null | undefined> {
  return new Promise((resolve) => store.put(key, value, (err) => resolve(err)))
}
function cbDel(store: KadStore, key: string): Promise<Error | null | undefined> {
  return new Promise((resolve) => store.del(key, (err) => resolve(err)))
}

async function readAll(store: KadStore): Promise<StoreEntry[]> {
  const stream = store.createReadStream()
  assert.equal(stream.readableObjectMode, true, 'the read stream is in object mode')
  const out: StoreEntry[] = []
  for await (const entry of stream) out.push(entry as StoreEntry)
  return out
}

for (const { name, make } of stores) {
  test(`${name}: promise get/put/del`, async (t) => {
    const store = make(t)
    await store.put('a', '1')
    await store.put('b/c', 'two')
    assert.equal(await store.get('a'), '1')
    assert.equal(await store.get('b/c'), 'two')
    await store.put('a', 'replaced')
    assert.equal(await store.get('a'), 'replaced')
    await store.del('a')
    await assert.rejects(store.get('a'), (err: unknown) => err instanceof StorageError && err.code === 'ERR_STORAGE_NOT_FOUND')
    await store.del('never-there') // deleting a missing key is not an error
    await assert.rejects(store.put('', 'x'), { code: 'ERR_STORAGE_BAD_KEY' })
    await assert.rejects(store.put('k', 42 as unknown as string), { code: 'ERR_STORAGE_BAD_KEY' })
  })

  test(`${name}: callback get/put/del, called asynchronously`, async (t) => {
    const store = make(t)
    let sync = true
    const done = cbPut(store, 'k', 'v').then((err) => {
      assert.equal(sync, false, 'the callback comes on a later tick')
      return err
    })
    sync = false
    assert.equal(await done, null)
    const got = await cbGet(store, 'k')
    assert.equal(got.err, null)
    assert.equal(got.value, 'v')
    assert.equal(store.get('k', () => {}), undefined, 'with a callback nothing is returned')
    assert.equal(await cbDel(store, 'k'), null)
    const missing = await cbGet(store, 'k')
    assert.ok(missing.err instanceof StorageError)
    assert.equal((missing.err as StorageError).code, 'ERR_STORAGE_NOT_FOUND')
    assert.equal(missing.value, undefined)
  })

  test(`${name}: createReadStream yields {key, value} objects`, async (t) => {
    const store = make(t)
    const entries = { alpha: 'A', 'beta.gamma': 'B', 'z/ü': 'Ü' }
    for (const [k, v] of Object.entries(entries)) await store.put(k, v)
    const got = await readAll(store)
    for (const e of got) assert.deepEqual(Object.keys(e).sort(), ['key', 'value'])
    assert.deepEqual(Object.fromEntries(got.map((e) => [e.key, e.value])), entries)
  })
}

test('LevelStore: the identity key lives in a 0600 file beside the database, and is listed', async (t) => {
  const dir = tempDir(t)
  const store = new LevelStore({ dir })
  t.after(() => store.close())
  await store.put('identity', 'secret')
  await store.put('other', 'x')
  const stat = fs.statSync(path.join(dir, 'identity'))
  assert.equal(stat.mode & 0o777, 0o600)
  assert.equal(store.getSync('identity'), 'secret')
  assert.equal(store.getSync('other'), undefined, 'database keys cannot be read synchronously')
  assert.deepEqual((await readAll(store)).map((e) => e.key), ['identity', 'other'])
  await store.del('identity')
  assert.equal(store.getSync('identity'), null)
  await assert.rejects(store.get('identity'), { code: 'ERR_STORAGE_NOT_FOUND' })
})

test('LevelStore: the identity file is fsynced before its rename and its directory after', async (t) => {
  const dir = tempDir(t)
  const store = new LevelStore({ dir })
  t.after(() => store.close())
  const steps: string[] = []
  const realFsync = fs.fsyncSync
  const realRename = fs.renameSync
  const where = (fd: number): string => {
    const target = fs.readlinkSync(`/proc/self/fd/${fd}`)
    return target === dir ? 'dir' : path.basename(target).includes('.tmp') ? 'tmp' : target
  }
  fs.fsyncSync = (fd: number) => {
    steps.push(`fsync ${where(fd)}`)
    realFsync(fd)
  }
  fs.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
    steps.push('rename')
    realRename(from, to)
  }
  try {
    await store.put('identity', 'secret')
  } finally {
    fs.fsyncSync = realFsync
    fs.renameSync = realRename
  }
  assert.deepEqual(steps, ['fsync tmp', 'rename', 'fsync dir'])
  assert.equal(fs.readFileSync(path.join(dir, 'identity'), 'utf8'), 'secret')
  assert.equal(fs.statSync(path.join(dir, 'identity')).mode & 0o777, 0o600)
  await store.close() // before the directory is removed: LevelDB may still be writing its files
})

test('LevelStore: data survives close and reopen', async (t) => {
  const dir = tempDir(t)
  const a = new LevelStore({ dir })
  await a.put('k', 'v')
  await a.close()
  await assert.rejects(a.get('k'), { code: 'ERR_STORAGE_UNAVAILABLE' }, 'a closed store refuses work')
  const b = new LevelStore({ dir })
  t.after(() => b.close())
  assert.equal(await b.get('k'), 'v')
})

const HOSTILE_KEYS = [
  'plain',
  '../escape',
  '../../etc/passwd-like',
  '/absolute',
  'a/b/c',
  '.',
  '..',
  '.hidden',
  '%2e%2e%2f',
  '100%',
  'ünïcødé 键 🚀',
  'with space',
  'back\\slash',
  '_underscore',
  'node.signId',
  "!~*'()"
]

test('PlatformStorage over real kad-fs: hostile keys round-trip, all files stay inside the data directory', async (t) => {
  const parent = tempDir(t)
  const dataDir = path.join(parent, 'store')
  const storage = new PlatformStorage(kadfs(dataDir))
  await storage.open()
  for (const [i, key] of HOSTILE_KEYS.entries()) await storage.put(key, `value ${i}`)
  for (const [i, key] of HOSTILE_KEYS.entries()) assert.equal(await storage.get(key), `value ${i}`, key)
  assert.equal(await storage.get('missing'), undefined, 'a missing key is undefined')
  // The parent holds nothing but the store, the store nothing but flat files with safe names.
  const tree = listTree(parent)
  const files = tree.filter((p) => p !== 'store/')
  assert.equal(files.length, HOSTILE_KEYS.length, tree.join('\n'))
  for (const file of files) assert.match(file, /^store\/[A-Za-z0-9_-][A-Za-z0-9_.-]*$/, 'a flat file with a safe name')
  // The listing decodes back to the keys.
  const entries = await storage.entries()
  assert.deepEqual(entries.map((e) => e.key).sort(), [...HOSTILE_KEYS].sort())
  assert.deepEqual((await storage.entries('node.')).map((e) => e.key), ['node.signId'])
  for (const key of HOSTILE_KEYS) await storage.del(key)
  await storage.del('missing') // not an error
  assert.deepEqual(listTree(dataDir), [])
})

test('PlatformStorage: bad keys reject with ERR_STORAGE_BAD_KEY (never a synchronous throw)', async (t) => {
  const storage = new PlatformStorage(kadfs(path.join(tempDir(t), 'store')))
  const tooLong = 'x'.repeat(MAX_ENCODED_KEY_BYTES + 1)
  for (const key of ['', tooLong, 'lone \ud800 surrogate']) {
    for (const op of [() => storage.get(key), () => storage.put(key, 'v'), () => storage.del(key)]) {
      let promise: Promise<unknown>
      try {
        promise = op()
      } catch (err) {
        assert.fail(`threw synchronously for ${JSON.stringify(key).slice(0, 30)}: ${String(err)}`)
      }
      await assert.rejects(promise, (err: unknown) => err instanceof StorageError && err.code === 'ERR_STORAGE_BAD_KEY')
    }
  }
})

test('PlatformStorage refuses a store that is not kad-fs compatible', () => {
  assert.throws(() => new PlatformStorage({ get() {}, put() {} } as unknown as KadStore), { code: 'ERR_STORAGE_UNAVAILABLE' })
  assert.throws(() => new Platform({ storage: {} as KadStore }), { code: 'ERR_STORAGE_UNAVAILABLE' })
})

test('PlatformStorage over kad-fs: a data directory removed after construction is ERR_STORAGE_UNAVAILABLE on open', async (t) => {
  const dataDir = path.join(tempDir(t), 'store')
  const storage = new PlatformStorage(kadfs(dataDir))
  fs.rmSync(dataDir, { recursive: true })
  await assert.rejects(storage.open(), { code: 'ERR_STORAGE_UNAVAILABLE' })
})

const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/

test('safe keys: encode/decode round-trip, names use only [A-Za-z0-9_.-] and never start with a dot', () => {
  const key = fc.oneof(
    fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }),
    fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }),
    fc.string({ minLength: 1, maxLength: 40, unit: fc.constantFrom('.', '/', '%', '_', '-', '\\', 'a', 'Z', '0', '~', '*', "'", '(', ')', '!', ' ', 'é') })
  )
  fc.assert(
    fc.property(key, (k) => {
      let name: string
      try {
        name = encodeKey(k)
      } catch (err) {
        // Only an over-long key may be refused, and then with a typed error.
        assert.ok(err instanceof StorageError && err.code === 'ERR_STORAGE_BAD_KEY', String(err))
        assert.ok(encodeURIComponent(k).length > MAX_ENCODED_KEY_BYTES / 3)
        return
      }
      assert.match(name, SAFE_NAME)
      assert.notEqual(name, '.')
      assert.notEqual(name, '..')
      assert.ok(name.length <= MAX_ENCODED_KEY_BYTES)
      assert.equal(decodeKey(name), k)
    }),
    { numRuns: 2000 }
  )
})

test('safe keys: distinct keys never share a name, and names it cannot produce decode to null', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom('.', '_', '%', 'a', '/', '2', 'E', 'F') }), fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom('.', '_', '%', 'a', '/', '2', 'E', 'F') }), (a, b) => {
      if (a !== b) assert.notEqual(encodeKey(a), encodeKey(b))
    }),
    { numRuns: 2000 }
  )
  for (const name of ['', '.', '..', '.hidden', 'a/b', 'a%20b', 'a.G0', 'a.2', 'ü']) assert.equal(decodeKey(name), null, name)
  assert.equal(encodeKey('identity'), 'identity', 'plain keys keep their name')
  assert.equal(encodeKey('node.signId'), 'node.2EsignId')
})

test('LevelStore: a second store on an open directory (same process) rejects with ERR_STORAGE_LOCKED', async (t) => {
  const dir = tempDir(t)
  const first = new LevelStore({ dir })
  t.after(() => first.close())
  await first.open()
  const second = new LevelStore({ dir })
  await assert.rejects(second.open(), (err: unknown) => {
    assert.ok(err instanceof StorageError)
    assert.equal(err.code, 'ERR_STORAGE_LOCKED')
    assert.ok(err.message.includes(dir), err.message)
    return true
  })
  await second.close()
  await first.put('still', 'works')
  assert.equal(await first.get('still'), 'works')
})

test('two platforms on one data directory: the second rejects ready() and emits error ERR_STORAGE_LOCKED', async (t) => {
  const dataDir = tempDir(t)
  const first = new Platform({ dataDir })
  t.after(() => first.close())
  await first.ready()
  const second = new Platform({ dataDir })
  const errorEvent = nextEvent<[StorageError]>(second, 'error')
  await assert.rejects(second.ready(), { name: 'StorageError', code: 'ERR_STORAGE_LOCKED' })
  const [emitted] = await errorEvent
  assert.equal(emitted.code, 'ERR_STORAGE_LOCKED')
  assert.equal(second.isReady(), false)
  await second.close()
  // The first is unaffected.
  assert.equal(first.isReady(), true)
  const got = new Promise((resolve) => first.messaging.once('self.still.here', (_t, _s, p) => resolve(p)))
  first.messaging.send('still.here', 'local', 1)
  assert.equal(await got, 1)
})

test('a second process on a held data directory: the CLI start exits 1 with ERR_STORAGE_LOCKED, no crash', async (t) => {
  const dataDir = tempDir(t)
  const holder = new Platform({ dataDir })
  t.after(() => holder.close())
  await holder.ready()
  const r = await runNode(CLI, { args: ['start', '--data-dir', dataDir], timeoutMs: 20_000 })
  assert.equal(r.timedOut, false)
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /ERR_STORAGE_LOCKED/)
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'a clear message, not a crash trace')
})

test('a corrupt LevelDB (junk MANIFEST) fails start with ERR_STORAGE_CORRUPT or ERR_STORAGE_UNAVAILABLE', async (t) => {
  const dataDir = tempDir(t)
  const p = new Platform({ dataDir })
  await p.ready()
  await p.close()
  const db = path.join(dataDir, 'db')
  assert.ok(fs.readdirSync(db).some((f) => f.startsWith('MANIFEST-')))
  fs.writeFileSync(path.join(db, 'MANIFEST-000999'), Buffer.from('this is not a leveldb manifest, just junk bytes \x00\x01\x02'))
  fs.writeFileSync(path.join(db, 'CURRENT'), 'MANIFEST-000999\n')
  const broken = new Platform({ dataDir })
  const errors: unknown[] = []
  broken.on('error', (err) => errors.push(err))
  await assert.rejects(broken.ready(), (err: unknown) => {
    assert.ok(err instanceof StorageError, String(err))
    assert.ok(err.code === 'ERR_STORAGE_CORRUPT' || err.code === 'ERR_STORAGE_UNAVAILABLE', err.code)
    assert.ok(err.message.includes(dataDir), `the message names the directory: ${err.message}`)
    return true
  })
  assert.equal(errors.length, 1)
  await broken.close()
})

test('a data directory path that is a regular file fails start with ERR_STORAGE_UNAVAILABLE', async (t) => {
  const file = path.join(tempDir(t), 'not-a-dir')
  fs.writeFileSync(file, 'x')
  const p = new Platform({ dataDir: file })
  p.on('error', () => {})
  await assert.rejects(p.ready(), (err: unknown) => err instanceof StorageError && err.code === 'ERR_STORAGE_UNAVAILABLE' && err.message.includes(file))
  await p.close()
  assert.equal(fs.readFileSync(file, 'utf8'), 'x', 'the file is left alone')
})
