/**
 * Lifecycle: ready/close ordering, close() idempotent and releasing the LevelDB lock, close
 * before ready, close of a failed platform, and a child process that must exit by itself.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { MemoryStore, Platform, StateError } from '../src/index.js'
import { FIXTURES, nextEvent, runNode, tempDir } from './helpers/index.js'

test('ready: the event and the promise, isReady(), and getSignId before/after', async () => {
  const platform = new Platform({ storage: new MemoryStore() })
  assert.equal(platform.isReady(), false)
  const event = nextEvent(platform, 'ready')
  await platform.ready()
  await event
  assert.equal(platform.isReady(), true)
  assert.equal(platform.ready(), platform.ready(), 'one promise')
  await platform.close()
  assert.equal(platform.isReady(), false)
})

test('close() is idempotent: repeat calls share one promise; close event once; listeners removed', async () => {
  const platform = new Platform({ storage: new MemoryStore() })
  await platform.ready()
  let closeEvents = 0
  platform.on('close', () => closeEvents++)
  platform.messaging.on('self.x', () => {})
  const a = platform.close()
  const b = platform.close()
  assert.equal(a, b)
  await a
  assert.equal(platform.close(), a, 'still the same promise after it settled')
  assert.equal(closeEvents, 1)
  assert.equal(platform.listenerCount('message'), 0)
  assert.equal(platform.messaging.subscriptions, 0)
})

test('close() releases the LevelDB lock: a new platform on the same directory starts', async (t) => {
  const dataDir = tempDir(t)
  const signIds: string[] = []
  for (let i = 0; i < 3; i++) {
    const platform = new Platform({ dataDir })
    await assert.doesNotReject(platform.ready(), `start ${i} on the directory the previous one closed`)
    assert.equal(platform.isReady(), true)
    signIds.push(platform.identity.getSignId())
    await platform.close()
  }
  // While one is open, the lock is held: a second one on the same directory is refused.
  const last = new Platform({ dataDir })
  await last.ready()
  const second = new Platform({ dataDir })
  second.on('error', () => {})
  await assert.rejects(second.ready(), { code: 'ERR_STORAGE_LOCKED' })
  await second.close()
  // Every start read the same store: one identity throughout.
  assert.equal(new Set([...signIds, last.identity.getSignId()]).size, 1)
  await last.close()
})

test('close() right after construction: no ready event, no error, lock released', async (t) => {
  const dataDir = tempDir(t)
  const platform = new Platform({ dataDir })
  let readyEvents = 0
  let errors = 0
  platform.on('ready', () => readyEvents++)
  platform.on('error', () => errors++)
  await platform.close()
  await platform.ready() // settles, does not reject
  assert.equal(readyEvents, 0)
  assert.equal(errors, 0)
  assert.throws(() => platform.messaging.send('t', 'local', 1), (err: unknown) => err instanceof StateError && err.code === 'ERR_CLOSED')
  const next = new Platform({ dataDir })
  await next.ready()
  await next.close()
})

test('close() of a platform that failed to start resolves, and leaves the holder alone', async (t) => {
  const dataDir = tempDir(t)
  const holder = new Platform({ dataDir })
  await holder.ready()
  const failed = new Platform({ dataDir })
  failed.on('error', () => {})
  await assert.rejects(failed.ready(), { code: 'ERR_STORAGE_LOCKED' })
  await failed.close()
  await failed.close()
  assert.equal(holder.isReady(), true)
  await holder.close()
})

test('a process with three platforms (LevelDB and memory) exits by itself after close, timers cleared', async (t) => {
  const r = await runNode(path.join(FIXTURES, 'lifecycle-exit.mjs'), { env: { MM_PLATFORM_DATA: tempDir(t) }, timeoutMs: 10_000 })
  assert.equal(r.timedOut, false, `did not exit within 10 s; stdout: ${r.stdout}; stderr: ${r.stderr}`)
  assert.equal(r.code, 0, r.stderr)
  const out = r.stdout.trim().split('\n')
  assert.deepEqual(out, ['received 9', 'pending lookup ERR_CLOSED', 'timers left 0', 'closed'])
})
